/*
 * Which Kiro models take the native thinking-effort field, additionalModelRequestFields.output_config.effort
 * (kiro-protocol-2026.md §7). Until the per-account catalog (ListAvailableModels' additionalModelRequestFieldsSchema)
 * backs it, a static list from the peers' evidence: claude-opus-4.6/4.7/4.8, claude-sonnet-4.6 and the 5-series
 * (claude-<family>-5 and -5.x); "xhigh" is not taken by the 4.5/4.6 models. A model that answered
 * "additionalModelRequestFields is not supported for this model" (or "Invalid additionalModelRequestFields") is
 * remembered for the life of the process (k2a_model_effort_unsupported) and never gets the field again.
 * Thread-safe: every worker loop asks.
 */
#ifndef K2A_CONVERT_MODEL_EFFORT_H
#define K2A_CONVERT_MODEL_EFFORT_H

#include <stdbool.h>
#include "core/str.h"

#define K2A_MODEL_EFFORT_REMEMBER_MAX 64 /* models remembered as refusing the field (more are not recorded) */

/* True when the Kiro model model_id takes output_config.effort = effort (effort empty: whether it takes the native
 * fields at all). Effort values: low, medium, high, xhigh, max. */
bool k2a_model_accepts_effort(k2a_str_t model_id, k2a_str_t effort);

/* Kiro refused the field for model_id: remember it. */
void k2a_model_effort_unsupported(k2a_str_t model_id);

/* Forgets what k2a_model_effort_unsupported recorded (tests). */
void k2a_model_effort_reset(void);

#endif
