/*
 * Private to the Responses request decoder (responses_req.c = the SAX state machine, responses_req_items.c = items,
 * tools and the request as a whole turned into IR). The parser embeds the Chat decoder's state (openai_internal.h)
 * as its first member, so that the Chat decoder's assembly functions and error helpers work on it unchanged.
 */
#ifndef K2A_CONVERT_RESPONSES_INTERNAL_H
#define K2A_CONVERT_RESPONSES_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <yajl/yajl_parse.h>
#include "core/buf.h"
#include "convert/openai_internal.h"
#include "convert/responses_req.h"

typedef enum en_k2a_rp_ctx_t {
    R_ROOT = 0,
    R_INPUT,
    R_ITEM,
    R_CONTENT, /* a message's content[] or a function_call_output's output[] */
    R_PART,
    R_SUMMARY, /* a reasoning item's summary[] */
    R_SUMMARY_PART,
    R_TOOLS,
    R_TOOL,
    R_TOOL_CHOICE,
    R_REASONING,
    R_TEXT,
    R_FORMAT,
} k2a_rp_ctx_t;

typedef struct st_k2a_rp_parser_t {
    k2a_oa_parser_t p; /* first: the Chat decoder's helpers take &r->p */
    k2a_responses_extra_t *extra;
    bool in_prior; /* parsing the stored conversation of previous_response_id */
    bool has_input;
    size_t input_start, tools_start, tc_start;
    size_t nitems;
    size_t item_start; /* where the item being parsed begins in the document */
    /* the item being parsed (role and content are in p.msg, content parts in p.parts) */
    struct {
        k2a_str_t type, call_id, name, input, input_raw;
        bool has_args;
        int output; /* function_call_output: 0 absent, 2 string (p.msg.content_str), 3 parts (p.parts) */
    } item;
    int parts_of;
    k2a_str_t part_type;
    bool part_file_id;
    k2a_oa_blocks_t summ; /* a reasoning item's summary texts */
    bool asst_open;       /* p.asst holds the assistant turn being assembled */
    k2a_buf_t join;       /* scratch: joined reasoning texts */
    k2a_str_t tc_type, tc_name;
} k2a_rp_parser_t;

/* responses_req_items.c; each returns 0 or a negative K2A_E* (recorded with its path) */
int k2a_rp_input_string(k2a_rp_parser_t *r, k2a_str_t text);
int k2a_rp_keep_item_json(k2a_rp_parser_t *r, k2a_str_t json);
int k2a_rp_finish_part(k2a_rp_parser_t *r);
int k2a_rp_finish_summary_part(k2a_rp_parser_t *r);
int k2a_rp_finish_item(k2a_rp_parser_t *r);
int k2a_rp_finish_tool(k2a_rp_parser_t *r);
int k2a_rp_finish_tool_choice(k2a_rp_parser_t *r);
int k2a_rp_finish_format(k2a_rp_parser_t *r);
int k2a_rp_finish_request(k2a_rp_parser_t *r);

#endif
