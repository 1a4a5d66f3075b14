// ort_run.js MODEL THREADS REPEAT OUTDIR INPUT.npy...
// Runs MODEL with ONNX Runtime (CPU) on the inputs, REPEAT times after one warm-up,
// prints {"median_ms": ...} and writes output_K.npy into OUTDIR. With
// KILN_ORT_PROFILE=PREFIX set, ONNX Runtime also writes its per-node profile.
const ort = require('onnxruntime-node');
const fs = require('fs');
const path = require('path');

const TYPES = { '<f4': ['float32', Float32Array], '<i8': ['int64', BigInt64Array], '<i4': ['int32', Int32Array], '|u1': ['uint8', Uint8Array], '|b1': ['bool', Uint8Array], '<f8': ['float64', Float64Array] };

function readNpy(file) {
  const buf = fs.readFileSync(file);
  const hlen = buf.readUInt16LE(8);
  const header = buf.toString('latin1', 10, 10 + hlen);
  const descr = /'descr': '([^']+)'/.exec(header)[1];
  const shape = /'shape': \(([^)]*)\)/.exec(header)[1].split(',').map(s => s.trim()).filter(s => s).map(Number);
  const [type, Arr] = TYPES[descr];
  const raw = buf.subarray(10 + hlen);
  const copy = new Uint8Array(raw.length); copy.set(raw);
  return new ort.Tensor(type, new Arr(copy.buffer), shape);
}

function writeNpy(file, t) {
  const descr = { float32: '<f4', int64: '<i8', int32: '<i4', uint8: '|u1', bool: '|b1', float64: '<f8' }[t.type];
  const shape = t.dims.length === 1 ? `(${t.dims[0]},)` : `(${t.dims.join(', ')})`;
  let h = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  while ((10 + h.length + 1) % 64) h += ' ';
  h += '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1'); head[6] = 1; head[7] = 0; head.writeUInt16LE(h.length, 8);
  const data = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(h, 'latin1'), data]));
}

(async () => {
  const [model, threads, repeat, outdir, ...inputs] = process.argv.slice(2);
  const n = Number(threads);
  const opts = { intraOpNumThreads: n, interOpNumThreads: 1, executionProviders: ['cpu'], graphOptimizationLevel: 'all' };
  /* bench/layers.py: ONNX Runtime's own per-node profile, written as PREFIX_<date>.json */
  const prof = process.env.KILN_ORT_PROFILE;
  if (prof) Object.assign(opts, { enableProfiling: true, profileFilePrefix: prof });
  const sess = await ort.InferenceSession.create(model, opts);
  const feeds = {};
  sess.inputNames.forEach((name, i) => { feeds[name] = readNpy(inputs[i]); });
  let out = await sess.run(feeds);
  const times = [];
  for (let r = 0; r < Number(repeat); r++) {
    const t0 = process.hrtime.bigint();
    out = await sess.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  fs.mkdirSync(outdir, { recursive: true });
  sess.outputNames.forEach((name, k) => writeNpy(path.join(outdir, `output_${k}.npy`), out[name]));
  if (prof) sess.endProfiling();
  console.log(JSON.stringify({ median_ms: times[Math.floor(times.length / 2)] }));
})().catch(e => { console.error(String(e)); process.exit(1); });
