/* elf.h: a data blob as an ELF64 relocatable object (codegen/elf.c). */
#ifndef KILN_ELF_H
#define KILN_ELF_H

#include "../ir/ir.h"

/* e_machine of a Debian triple (62 x86-64, 183 AArch64); 0 when unknown. */
int elf_machine_of(const char *triple);
/* Writes an object whose hidden global `symbol` is `size` bytes of `data`,
 * 64-byte aligned, read-only. */
bool elf_write_blob(const char *path, const char *symbol, const void *data, int64_t size, int machine, Diags *d);

#endif
