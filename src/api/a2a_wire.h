/* A2A wire formats: one internal task/message model and two encoders (A2A
 * 1.0 and 0.3), the JSON-RPC envelope, version negotiation and part decoding.
 * Pure JSON: no I/O, no globals, so the unit tests pin every shape. */
#ifndef AGENTD_API_A2A_WIRE_H
#define AGENTD_API_A2A_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/err.h"

/* Wire versions: A2A-Version: 1.0, or no header (0.3). */
enum a2a_ver { A2A_V03 = 0, A2A_V10 = 1 };

/* JSON-RPC 2.0 and A2A error codes. */
#define A2A_PARSE_ERROR -32700
#define A2A_INVALID_REQUEST -32600
#define A2A_METHOD_NOT_FOUND -32601
#define A2A_INVALID_PARAMS -32602
#define A2A_INTERNAL_ERROR -32603
#define A2A_TASK_NOT_FOUND -32001
#define A2A_TASK_NOT_CANCELABLE -32002
#define A2A_PUSH_NOT_SUPPORTED -32003
#define A2A_UNSUPPORTED_OPERATION -32004
#define A2A_CONTENT_TYPE_NOT_SUPPORTED -32005
#define A2A_EXTENSION_REQUIRED -32008
#define A2A_VERSION_NOT_SUPPORTED -32009

enum a2a_method {
    A2A_M_UNKNOWN = 0,
    A2A_M_SEND,
    A2A_M_STREAM,
    A2A_M_GET,
    A2A_M_LIST,
    A2A_M_CANCEL,
    A2A_M_SUBSCRIBE,
    A2A_M_CARD,
    A2A_M_PUSH, /* any push-notification config method */
};

/* The A2A-Version header: NULL or empty -> 0.3, "1.0"/"1" -> 1.0,
 * "0.3"/"0.3.0" -> 0.3, anything else -> AGENTD_EINVAL (VersionNotSupported). */
int a2a_version_parse(const char *header);
/* A method name of that version's vocabulary, else A2A_M_UNKNOWN. */
enum a2a_method a2a_method_lookup(const char *name, int ver);

/* A JSON-RPC 2.0 request envelope (borrowed from the body). */
struct a2a_rpc {
    const json_t *id;   /* string, number or null; NULL when the request had none */
    const char *method;
    json_t *params;     /* an object (absent params = NULL) */
};
/* 0, or AGENTD_EINVAL with the reason in *e (a batch array too: refused);
 * the answer is A2A_INVALID_REQUEST. rpc->id is set whenever the body
 * carried a usable id, for the error answer. */
int a2a_envelope_check(const json_t *body, struct a2a_rpc *rpc, struct agentd_error *e);
/* The JSON-RPC error code for a status of the decoders below: AGENTD_EINVAL
 * -> A2A_INVALID_PARAMS, AGENTD_EMEDIATYPE -> A2A_CONTENT_TYPE_NOT_SUPPORTED,
 * anything else -> A2A_INTERNAL_ERROR. */
int a2a_rpc_code(int status);
/* {"jsonrpc":"2.0","id":id,"result":result}; steals result. */
json_t *a2a_rpc_result(const json_t *id, json_t *result);
/* {"jsonrpc":"2.0","id":id,"error":{code,message,data?}}; steals data. */
json_t *a2a_rpc_error(const json_t *id, int code, const char *message, json_t *data);

/* A message's parts in any accepted shape (0.3 "kind", the sample client's
 * "type", 1.0's bare oneof) -> internal parts ({"text":s} | {"data":v}),
 * a new array. 0, AGENTD_EINVAL, AGENTD_EMEDIATYPE (file parts) or
 * AGENTD_ENOMEM, with *e naming the field (a2a_rpc_code() gives the answer's code). */
int a2a_parts_decode(const json_t *parts, json_t **out, struct agentd_error *e);
/* The text parts joined by "\n" (malloc'd; "" when none; NULL on OOM). */
char *a2a_parts_text(const json_t *parts);
/* The data parts' objects merged into one new object, or NULL when none. */
json_t *a2a_parts_data(const json_t *parts);

/* A message's fingerprint, what a retried messageId must match: SHA-256
 * hex of "A2A\nmessage\n" and the message as the client sent it, compact
 * with sorted keys (the stored claims' bytes: never change them). 0, or
 * AGENTD_ENOMEM / AGENTD_EINVAL with out "". */
int a2a_message_fingerprint(const json_t *msg, char out[65]);

/* Internal states: "submitted", "working", "input-required", "completed",
 * "failed", "canceled", "rejected" (0.3's own spelling). */
const char *a2a_state_wire(const char *state, int ver);
/* Either version's spelling -> the internal state (static), or NULL. */
const char *a2a_state_parse(const char *wire);
int a2a_state_terminal(const char *state);

/* "2026-12-03T06:10:48.123Z" */
void a2a_timestamp(int64_t ms, char out[32]);

/* The internal task model: {"id","contextId","state","timestamp",
 * "message"?,"artifacts":[{"artifactId","name"?,"parts"}],"history":[msg]}
 * where msg is {"messageId","role":"user"|"agent","parts","contextId",
 * "taskId"?}. Encoders return new references. history_length < 0: all;
 * with_artifacts 0 drops them (ListTasks' default). */
json_t *a2a_encode_message(const json_t *msg, int ver);
json_t *a2a_encode_task(const json_t *task, int ver, int history_length, int with_artifacts);
/* SendMessage's result: 1.0 {"task":t}; 0.3 the task itself. */
json_t *a2a_encode_send_result(const json_t *task, int ver, int history_length);
/* The whole JSON-RPC reply {"jsonrpc","id","result"} of SendMessage written
 * straight into *b, byte for byte what json_dumps(a2a_rpc_result(id,
 * a2a_encode_send_result(...)), JSON_COMPACT | JSON_REAL_PRECISION(10))
 * gives, without building that tree (the hot path's reply). 0, or a
 * negative AGENTD_E* for a model it does not expect (the caller then
 * takes the tree path). */
int a2a_write_send_reply(struct buf *b, const json_t *id, const json_t *task, int ver,
                         int history_length);
/* Stream frames. 1.0: {"task"|"statusUpdate"|"artifactUpdate": ...};
 * 0.3: the object with its "kind" ("task", "status-update" with "final",
 * "artifact-update"). */
json_t *a2a_encode_task_frame(const json_t *task, int ver);
json_t *a2a_encode_status_update(const json_t *task, int final, int ver);
json_t *a2a_encode_artifact_update(const json_t *task, const json_t *artifact, int append,
                                   int last_chunk, int ver);

#endif
