/*
 * An account's model catalog: what ListAvailableModels (kiro-protocol-2026 §3) says the account may use.
 * This header is the pure part (parse a page, look up, encode for the state file), free of I/O so that it
 * is unit-tested and fuzzed on its own; the background fetch that fills it per account lives in
 * catalog_job.c (declared in pool/internal.h). Every input is bounded: a page of at most
 * K2A_CATALOG_MAX_BODY bytes nested at most K2A_CATALOG_MAX_DEPTH deep, at most K2A_CATALOG_MAX_MODELS
 * models, IDs of [A-Za-z0-9._:-]{1,128}, names cut at 128 bytes with control characters blanked.
 */
#ifndef K2A_POOL_CATALOG_H
#define K2A_POOL_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"

#define K2A_CATALOG_MAX_BODY (1024 * 1024)
#define K2A_CATALOG_MAX_DEPTH 32
#define K2A_CATALOG_MAX_MODELS 256
#define K2A_CATALOG_MAX_PAGES 10
#define K2A_CATALOG_MAX_TOKEN 2048 /* nextToken */
#define K2A_CATALOG_MAX_NAME 128

enum { K2A_CATALOG_INPUT_TEXT = 1, K2A_CATALOG_INPUT_IMAGE = 2 };

typedef struct st_k2a_catalog_model_t {
    char *id;               /* modelId, never NULL */
    char *name;             /* modelName, "" when absent */
    int64_t max_input;      /* tokenLimits.maxInputTokens, 0 when absent */
    int64_t max_output;     /* tokenLimits.maxOutputTokens, 0 when absent */
    unsigned input_types;   /* K2A_CATALOG_INPUT_* of supportedInputTypes */
    bool has_fields_schema; /* additionalModelRequestFieldsSchema is present */
    char *efforts;          /* its effort enum, comma-separated ("low,medium,high"), "" when none */
    double rate_multiplier; /* rateMultiplier, -1 when absent */
} k2a_catalog_model_t;

typedef struct st_k2a_catalog_t {
    k2a_catalog_model_t *models;
    size_t n;
    char *default_model; /* defaultModelId (or defaultModel.modelId), NULL when absent */
    int64_t fetched_at;  /* wall clock ms of the fetch, 0 when unknown */
} k2a_catalog_t;

void k2a_catalog_init(k2a_catalog_t *c);
void k2a_catalog_dispose(k2a_catalog_t *c);

/* Parses one ListAvailableModels page and appends its models to c (a modelId already present, or the same model spelled
 * "x"/"x.0", is skipped; entries without a valid modelId are skipped; models past K2A_CATALOG_MAX_MODELS are dropped).
 * next_token (next_sz > 0) receives nextToken, "" when missing, null or blank. Returns 0, or K2A_EUPSTREAM_EVENT with a
 * short reason in err (not a JSON object, too big or too deep, "models" not an array, nextToken too long or not a
 * string), or K2A_ENOMEM. On error c keeps what earlier pages added. */
int k2a_catalog_parse_page(const char *body, size_t len, k2a_catalog_t *c, char *next_token, size_t next_sz, char *err,
                           size_t errlen);

/* The model with this id ("x" and "x.0" match each other), or NULL. */
const k2a_catalog_model_t *k2a_catalog_find(const k2a_catalog_t *c, const char *id, size_t len);
/* Removes the model (Kiro answered INVALID_MODEL_ID for it). Returns true when it was there. */
bool k2a_catalog_remove(k2a_catalog_t *c, const char *id, size_t len);

/* Encodes c in the ListAvailableModels page shape plus "fetchedAt", which k2a_catalog_decode reads back (the state
 * file keeps it as a string). Returns 0 or K2A_ENOMEM/K2A_ETOOBIG. */
int k2a_catalog_encode(const k2a_catalog_t *c, k2a_buf_t *out);
/* Fills a fresh c from k2a_catalog_encode's output. Returns 0 or the errors of k2a_catalog_parse_page. */
int k2a_catalog_decode(const char *json, size_t len, k2a_catalog_t *c);

#endif
