/* elf.c: writes the weights as an ELF64 relocatable object by hand.
 *
 * The LLVM backend's executables and libraries link this object beside the
 * model's code: the weights go from memory to disk once, instead of through a
 * weights file that an assembler reads back with .incbin and copies into the
 * object. The object holds one section, .rodata.kiln_weights (64-byte
 * aligned), one hidden global symbol covering it, the symbol and string
 * tables, and an empty .note.GNU-stack (no executable stack). Little-endian
 * only (x86-64 and AArch64). Layout: header, data, symtab, strtab, shstrtab,
 * section headers. */
#include "elf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    unsigned char ident[16];
    uint16_t type, machine;
    uint32_t version;
    uint64_t entry, phoff, shoff;
    uint32_t flags;
    uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
} Ehdr;

typedef struct {
    uint32_t name, type;
    uint64_t flags, addr, offset, size;
    uint32_t link, info;
    uint64_t addralign, entsize;
} Shdr;

typedef struct {
    uint32_t name;
    unsigned char info, other;
    uint16_t shndx;
    uint64_t value, size;
} Sym;

enum { SHT_PROGBITS = 1, SHT_SYMTAB = 2, SHT_STRTAB = 3, SHF_ALLOC = 2 };

int elf_machine_of(const char *triple) {
    if (strncmp(triple, "x86_64", 6) == 0) return 62;
    if (strncmp(triple, "aarch64", 7) == 0) return 183;
    return 0;
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

bool elf_write_blob(const char *path, const char *symbol, const void *data, int64_t size, int machine, Diags *d) {
    static const char shstr[] = "\0.rodata.kiln_weights\0.symtab\0.strtab\0.shstrtab\0.note.GNU-stack";
    enum { N_RODATA = 1, N_SYMTAB = 22, N_STRTAB = 30, N_SHSTRTAB = 38, N_NOTE = 48 };
    size_t symlen = strlen(symbol);
    uint64_t n = (uint64_t)(size > 0 ? size : 1);
    uint64_t data_off = 64, sym_off = align_up(data_off + n, 8), str_off = sym_off + 2 * sizeof(Sym);
    uint64_t shstr_off = str_off + symlen + 2, sh_off = align_up(shstr_off + sizeof shstr, 8);
    Ehdr eh = {{0x7f, 'E', 'L', 'F', 2, 1, 1}, 1, (uint16_t)machine, 1, 0, 0, sh_off, 0, sizeof(Ehdr), 0, 0, sizeof(Shdr), 6, 5};
    Shdr sh[6] = {{0},
                  {N_RODATA, SHT_PROGBITS, SHF_ALLOC, 0, data_off, n, 0, 0, 64, 0},
                  {N_SYMTAB, SHT_SYMTAB, 0, 0, sym_off, 2 * sizeof(Sym), 3, 1, 8, sizeof(Sym)},
                  {N_STRTAB, SHT_STRTAB, 0, 0, str_off, symlen + 2, 0, 0, 1, 0},
                  {N_NOTE, SHT_PROGBITS, 0, 0, shstr_off, 0, 0, 0, 1, 0},
                  {N_SHSTRTAB, SHT_STRTAB, 0, 0, shstr_off, sizeof shstr, 0, 0, 1, 0}};
    Sym syms[2] = {{0}, {1, (1 << 4) | 1 /* GLOBAL OBJECT */, 2 /* HIDDEN */, 1, 0, n}};
    FILE *f = fopen(path, "wb");
    if (!f) { diag_error(d, NULL, "cannot write %s: %s", path, strerror(errno)); return false; }
    static const unsigned char zeros[64];
    bool ok = fwrite(&eh, sizeof eh, 1, f) == 1;
    ok = ok && (size > 0 ? fwrite(data, 1, (size_t)size, f) == (size_t)size : fwrite(zeros, 1, 1, f) == 1);
    ok = ok && fwrite(zeros, 1, sym_off - (data_off + n), f) == sym_off - (data_off + n);
    ok = ok && fwrite(syms, sizeof syms, 1, f) == 1;
    ok = ok && fputc(0, f) != EOF && fwrite(symbol, 1, symlen + 1, f) == symlen + 1;
    ok = ok && fwrite(shstr, sizeof shstr, 1, f) == 1;
    ok = ok && fwrite(zeros, 1, sh_off - (shstr_off + sizeof shstr), f) == sh_off - (shstr_off + sizeof shstr);
    ok = ok && fwrite(sh, sizeof sh, 1, f) == 1;
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        remove(path);
        diag_error(d, NULL, "cannot write %s", path);
    }
    return ok;
}
