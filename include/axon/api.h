/*
 * axon/api.h: AX_API marks the declarations libaxon exports.
 *
 * The library is built with -fvisibility=hidden: only what carries AX_API
 * (the public ax_ calls and objects of include/axon/) is in the dynamic
 * symbol table of libaxon.so. The internals (ax__ names, file-local
 * helpers) stay inside it, so programs cannot come to depend on them and
 * they can change without breaking the ABI.
 */
#ifndef AXON_API_H
#define AXON_API_H

#if defined(__GNUC__) || defined(__clang__)
#define AX_API __attribute__((visibility("default")))
#else
#define AX_API
#endif

#endif /* AXON_API_H */
