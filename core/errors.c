/*
 * core/errors.c - error strings, version numbers, size constants and
 * shoal_free.  Every string here is static: callers never free it.
 */
#include "core.h"

const char *
shoal_strerror(shoal_err err)
{
    switch (err) {
    case SHOAL_OK: return "success";
    case SHOAL_ENOMEM: return "out of memory";
    case SHOAL_EINVAL: return "invalid argument";
    case SHOAL_ENOTFOUND: return "not found";
    case SHOAL_ECLOSED: return "replica closed";
    case SHOAL_ETIMEDOUT: return "timed out";
    case SHOAL_ENOSPC: return "disk full";
    case SHOAL_EPROTO: return "malformed input";
    case SHOAL_EBADSIG: return "signature check failed";
    case SHOAL_ECORRUPT: return "stored state is corrupt";
    case SHOAL_ESTORE: return "storage error";
    case SHOAL_ETRANSPORT: return "network error";
    case SHOAL_EDELETED: return "document deleted";
    case SHOAL_EKIND: return "field holds another kind";
    case SHOAL_ERANGE: return "list index out of range";
    case SHOAL_ETRUNC: return "input truncated";
    case SHOAL_ETOOBIG: return "input or state too big";
    case SHOAL_EVERSION: return "unknown format version";
    case SHOAL_EREADONLY: return "replica not writable";
    case SHOAL_EBUSY: return "busy";
    case SHOAL_EREFUSED: return "link refused by the peer";
    case SHOAL_EPERM: return "not allowed by the permissions";
    }
    return "unknown error";
}

const char *
shoal_version(void)
{
    return "0.1.0";
}

int
shoal_version_number(void)
{
    return SHOAL_VERSION_MAJOR * 10000 + SHOAL_VERSION_MINOR * 100 + SHOAL_VERSION_PATCH;
}

size_t
shoal_key_bytes(void)
{
    return SHOAL_KEY_BYTES;
}

void
shoal_free(void *p)
{
    shoal__free(p);
}
