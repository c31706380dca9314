/*
 * The dialect-independent half of the seam (see dialect.h): the one lookup from a K2A_E* code to a dialect's error row,
 * and the error body built from it.
 */
#include "convert/dialect.h"

const k2a_dialect_error_t *k2a_dialect_error(const k2a_dialect_t *d, int err)
{
    if (err < 0 && -err - 1 < K2A__EIDX_MAX && d->errors[-err - 1].status != 0)
        return &d->errors[-err - 1];
    return &d->errors[K2A__EIDX_INTERNAL];
}

int k2a_dialect_error_body(const k2a_dialect_t *d, k2a_buf_t *out, int err, k2a_str_t message)
{
    const k2a_dialect_error_t *row = k2a_dialect_error(d, err);
    if (message.len == 0)
        message = k2a_cstr(k2a_strerror(err != 0 ? err : K2A_EINTERNAL));
    int r = d->error_body(out, row, err, message);
    return r != 0 ? r : row->status;
}
