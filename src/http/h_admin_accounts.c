/*
 * /api/admin/accounts...: the account pool managed at run time (admin.h). The pool's side is pool/admin.h.
 */
#include "http/admin.h"

const k2a_admin_route_t k2a_admin_account_routes[] = {
    {NULL, NULL, NULL},
};
