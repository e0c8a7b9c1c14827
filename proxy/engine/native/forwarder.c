/*
 * forwarder.node: the N-API face of engine-core (see engine-core.h). Node keeps accepting and
 * connecting; JS hands each connected pair over as two fds, which are dup()ed here, so the JS
 * sockets can then be destroyed: close() of one descriptor of a shared file description sends
 * nothing (no FIN, no RST) while the dup stays open.
 *
 * Exports: start(threads, onClosed), add(id, fdClient, fdUpstream, idleMs, preUp, preDown),
 * close(id), drainBy(delayMs), stats(), ref(), unref(), onDetached(fn), detach(id) (see the detach
 * block at the end).
 * onClosed(results: Float64Array) gets [id, bytesIn, bytesOut, outcome] × n, one call per batch.
 *
 * Ownership: g_engine, g_tsfn, g_refs are written on Node's main thread only (start, the cleanup
 * hook). g_mu guards g_results/g_nresults/g_cap/g_call_pending/g_closing, which loop threads fill
 * (on_done) and the main thread empties (call_js).
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine-core.h"

static fe_engine *g_engine;
static napi_threadsafe_function g_tsfn;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static fe_result *g_results;
static size_t g_nresults, g_cap;
static bool g_call_pending, g_closing;

#define CHECK(call)                                  \
  do {                                               \
    if ((call) != napi_ok) return throw_last(env);   \
  } while (0)

static napi_value throw_last(napi_env env) {
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, "ERR_ENGINE_NAPI", info && info->error_message ? info->error_message : "N-API call failed");
  return NULL;
}

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, "ERR_ENGINE", msg);
  return NULL;
}

/* Loop thread: queue the result; one threadsafe call per batch of results. */
static void on_done(const fe_result *r, void *ctx) {
  (void)ctx;
  bool call = false;
  pthread_mutex_lock(&g_mu);
  if (!g_closing) {
    if (g_nresults == g_cap) {
      size_t cap = g_cap ? g_cap * 2 : 64;
      fe_result *grown = realloc(g_results, cap * sizeof *grown);
      if (grown != NULL) {
        g_results = grown;
        g_cap = cap;
      }
    }
    if (g_nresults < g_cap) g_results[g_nresults++] = *r; /* else lost: out of memory */
    if (!g_call_pending) g_call_pending = call = true;
  }
  pthread_mutex_unlock(&g_mu);
  if (call) napi_call_threadsafe_function(g_tsfn, NULL, napi_tsfn_nonblocking);
}

/* Main thread: hand every queued result to JS in one call. */
static void call_js(napi_env env, napi_value fn, void *context, void *data) {
  (void)context;
  (void)data;
  pthread_mutex_lock(&g_mu);
  fe_result *batch = g_results;
  size_t n = g_nresults;
  g_results = NULL;
  g_nresults = g_cap = 0;
  g_call_pending = false;
  pthread_mutex_unlock(&g_mu);
  if (env != NULL && fn != NULL && n > 0) {
    napi_value ab, arr, undef;
    double *out = NULL;
    if (napi_create_arraybuffer(env, n * 4 * sizeof(double), (void **)&out, &ab) == napi_ok &&
        napi_create_typedarray(env, napi_float64_array, n * 4, ab, 0, &arr) == napi_ok) {
      for (size_t i = 0; i < n; i++) {
        out[4 * i] = (double)batch[i].id;
        out[4 * i + 1] = (double)batch[i].bytes_in;
        out[4 * i + 2] = (double)batch[i].bytes_out;
        out[4 * i + 3] = (double)batch[i].outcome;
      }
      napi_get_undefined(env, &undef);
      napi_call_function(env, undef, fn, 1, &arr, NULL);
    }
  }
  free(batch);
}

static void detach_cleanup(void);

/* Environment teardown: stop the loops (closing every pair), then drop the queue. */
static void cleanup(void *arg) {
  (void)arg;
  pthread_mutex_lock(&g_mu);
  g_closing = true;
  pthread_mutex_unlock(&g_mu);
  fe_stop(g_engine);
  g_engine = NULL;
  pthread_mutex_lock(&g_mu);
  free(g_results);
  g_results = NULL;
  g_nresults = g_cap = 0;
  pthread_mutex_unlock(&g_mu);
  if (g_tsfn != NULL) napi_release_threadsafe_function(g_tsfn, napi_tsfn_abort);
  g_tsfn = NULL;
  detach_cleanup();
}

static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (g_engine != NULL) {
    napi_throw_error(env, "ERR_ENGINE", "engine already started");
    return NULL;
  }
  int32_t threads = 1;
  CHECK(napi_get_value_int32(env, argv[0], &threads));
  napi_value name;
  CHECK(napi_create_string_utf8(env, "fproxy-engine", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &g_tsfn));
  /* Referenced only while pairs are open (ref/unref from JS), so an idle engine never keeps the
     process alive. */
  CHECK(napi_unref_threadsafe_function(env, g_tsfn));
  g_engine = fe_start(threads, on_done, NULL);
  if (g_engine == NULL) {
    int err = errno;
    napi_release_threadsafe_function(g_tsfn, napi_tsfn_abort);
    g_tsfn = NULL;
    return throw_errno(env, "cannot start the engine threads", err);
  }
  CHECK(napi_add_env_cleanup_hook(env, cleanup, NULL));
  return NULL;
}

static bool get_bytes(napi_env env, napi_value v, void **data, size_t *len) {
  napi_valuetype t;
  *data = NULL;
  *len = 0;
  if (napi_typeof(env, v, &t) != napi_ok) return false;
  if (t == napi_undefined || t == napi_null) return true;
  bool is_buf = false;
  if (napi_is_buffer(env, v, &is_buf) != napi_ok || !is_buf) return false;
  return napi_get_buffer_info(env, v, data, len) == napi_ok;
}

static napi_value js_add(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (g_engine == NULL) {
    napi_throw_error(env, "ERR_ENGINE", "engine not started");
    return NULL;
  }
  double id;
  int32_t fd_c, fd_u;
  uint32_t idle;
  void *up, *down;
  size_t up_len, down_len;
  CHECK(napi_get_value_double(env, argv[0], &id));
  CHECK(napi_get_value_int32(env, argv[1], &fd_c));
  CHECK(napi_get_value_int32(env, argv[2], &fd_u));
  CHECK(napi_get_value_uint32(env, argv[3], &idle));
  if (!get_bytes(env, argv[4], &up, &up_len) || !get_bytes(env, argv[5], &down, &down_len)) {
    napi_throw_type_error(env, "ERR_ENGINE", "preludes must be Buffers or null");
    return NULL;
  }
  /* Our own descriptors: the JS sockets close theirs right after this returns. */
  int dc = fcntl(fd_c, F_DUPFD_CLOEXEC, 0);
  if (dc < 0) return throw_errno(env, "dup(client)", errno);
  int du = fcntl(fd_u, F_DUPFD_CLOEXEC, 0);
  if (du < 0) {
    int err = errno;
    close(dc);
    return throw_errno(env, "dup(upstream)", err);
  }
  int rc = fe_add(g_engine, (uint64_t)id, dc, du, idle, up, up_len, down, down_len);
  if (rc != 0) return throw_errno(env, "add", -rc);
  return NULL;
}

/* close(id, reset?): a FIN to both sides, or with reset a RST to both. */
static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  double id;
  bool reset = false;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_double(env, argv[0], &id));
  if (argc > 1) {
    napi_valuetype t;
    CHECK(napi_typeof(env, argv[1], &t));
    if (t == napi_boolean) CHECK(napi_get_value_bool(env, argv[1], &reset));
  }
  if (g_engine != NULL) {
    if (reset) fe_reset(g_engine, (uint64_t)id);
    else fe_close(g_engine, (uint64_t)id);
  }
  return NULL;
}

static napi_value js_drain_by(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  double ms;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_double(env, argv[0], &ms));
  if (g_engine != NULL) fe_drain_by(g_engine, ms > 0 ? (uint64_t)ms : 0);
  return NULL;
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  (void)info;
  fe_stats s = {0};
  if (g_engine != NULL) fe_get_stats(g_engine, &s);
  napi_value obj, v;
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_create_double(env, (double)s.pairs, &v));
  CHECK(napi_set_named_property(env, obj, "pairs", v));
  CHECK(napi_create_double(env, (double)s.buffers_in_use, &v));
  CHECK(napi_set_named_property(env, obj, "buffersInUse", v));
  CHECK(napi_create_double(env, (double)s.buffers_pooled, &v));
  CHECK(napi_set_named_property(env, obj, "buffersPooled", v));
  return obj;
}

static napi_value js_ref(napi_env env, napi_callback_info info) {
  (void)info;
  if (g_tsfn != NULL) CHECK(napi_ref_threadsafe_function(env, g_tsfn));
  return NULL;
}

static napi_value js_unref(napi_env env, napi_callback_info info) {
  (void)info;
  if (g_tsfn != NULL) CHECK(napi_unref_threadsafe_function(env, g_tsfn));
  return NULL;
}

static napi_value js_on_detached(napi_env env, napi_callback_info info);
static napi_value js_detach(napi_env env, napi_callback_info info);

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"start", NULL, js_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"add", NULL, js_add, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"drainBy", NULL, js_drain_by, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ref", NULL, js_ref, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unref", NULL, js_unref, NULL, NULL, NULL, napi_enumerable, NULL},
      {"onDetached", NULL, js_on_detached, NULL, NULL, NULL, napi_enumerable, NULL},
      {"detach", NULL, js_detach, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

/* ---- detach (issue 16): fe_detach's answers to JS ----
 *
 * onDetached(fn) (once, after start) sets where answers go; detach(id) asks. fn(answers) gets an
 * array of {id, status, clientFd, upstreamFd, toUpstream, toClient, bytesIn, bytesOut} (status
 * 'detached' | 'gone' | 'half-closed'; the fds -1 and the Buffers null unless detached), one call
 * per batch. A detached pair's fds are then JS's to close (they are CLOEXEC dups).
 * g_det_mu guards g_det_head/g_det_tail/g_det_pending/g_det_closing (loop threads fill the list,
 * the main thread empties it); g_det_tsfn is written on the main thread only.
 */
typedef struct det_item {
  struct det_item *next;
  fe_detached d; /* to_upstream/to_client point into up/down below */
  char *up, *down;
} det_item;

static napi_threadsafe_function g_det_tsfn;
static pthread_mutex_t g_det_mu = PTHREAD_MUTEX_INITIALIZER;
static det_item *g_det_head, *g_det_tail;
static bool g_det_pending, g_det_closing;

static void det_free(det_item *it, bool close_fds) {
  if (close_fds && it->d.status == FE_DETACHED) {
    close(it->d.fd_client);
    close(it->d.fd_upstream);
  }
  free(it->up);
  free(it->down);
  free(it);
}

/* Loop thread: copy the answer (its buffers live only during this call) and queue it. */
static void on_detached(const fe_detached *d, void *ctx) {
  (void)ctx;
  det_item *it = calloc(1, sizeof *it);
  if (it != NULL) {
    it->d = *d;
    if (d->to_upstream_len > 0 && (it->up = malloc(d->to_upstream_len)) != NULL) memcpy(it->up, d->to_upstream, d->to_upstream_len);
    if (d->to_client_len > 0 && (it->down = malloc(d->to_client_len)) != NULL) memcpy(it->down, d->to_client, d->to_client_len);
    if ((d->to_upstream_len > 0 && it->up == NULL) || (d->to_client_len > 0 && it->down == NULL)) {
      /* Out of memory: bytes would be lost, so the connection goes (both closed) and JS hears
         "gone" — its close report never comes, which the JS side's detach timeout covers. */
      det_free(it, false); /* the fds are closed just below */
      it = NULL;
    }
  }
  if (it == NULL) {
    if (d->status == FE_DETACHED) {
      close(d->fd_client);
      close(d->fd_upstream);
    }
    return;
  }
  it->d.to_upstream = it->up;
  it->d.to_client = it->down;
  bool call = false, dropped = false;
  pthread_mutex_lock(&g_det_mu);
  if (g_det_closing || g_det_tsfn == NULL) {
    dropped = true;
  } else {
    if (g_det_tail != NULL) g_det_tail->next = it;
    else g_det_head = it;
    g_det_tail = it;
    if (!g_det_pending) g_det_pending = call = true;
  }
  pthread_mutex_unlock(&g_det_mu);
  if (dropped) det_free(it, true);
  if (call) napi_call_threadsafe_function(g_det_tsfn, NULL, napi_tsfn_nonblocking);
}

static napi_value det_buffer(napi_env env, const char *data, size_t len) {
  napi_value v = NULL;
  if (data == NULL || len == 0) napi_get_null(env, &v);
  else {
    void *out = NULL;
    if (napi_create_buffer_copy(env, len, data, &out, &v) != napi_ok) return NULL;
  }
  return v;
}

static const char *const DET_STATUS[] = {"detached", "gone", "half-closed"};

/* Main thread: one array of answers per batch. A detached pair whose answer cannot reach JS is closed. */
static void det_call_js(napi_env env, napi_value fn, void *context, void *data) {
  (void)context;
  (void)data;
  pthread_mutex_lock(&g_det_mu);
  det_item *it = g_det_head;
  g_det_head = g_det_tail = NULL;
  g_det_pending = false;
  pthread_mutex_unlock(&g_det_mu);
  napi_value arr = NULL, undef;
  uint32_t n = 0;
  bool ok = env != NULL && fn != NULL && napi_create_array(env, &arr) == napi_ok;
  while (it != NULL) {
    det_item *next = it->next;
    bool given = false;
    if (ok) {
      napi_value o, v;
      const fe_detached *d = &it->d;
      given = napi_create_object(env, &o) == napi_ok &&
              napi_create_double(env, (double)d->id, &v) == napi_ok && napi_set_named_property(env, o, "id", v) == napi_ok &&
              napi_create_string_utf8(env, DET_STATUS[d->status >= 0 && d->status <= 2 ? d->status : 1], NAPI_AUTO_LENGTH, &v) == napi_ok && napi_set_named_property(env, o, "status", v) == napi_ok &&
              napi_create_int32(env, d->fd_client, &v) == napi_ok && napi_set_named_property(env, o, "clientFd", v) == napi_ok &&
              napi_create_int32(env, d->fd_upstream, &v) == napi_ok && napi_set_named_property(env, o, "upstreamFd", v) == napi_ok &&
              (v = det_buffer(env, d->to_upstream, d->to_upstream_len)) != NULL && napi_set_named_property(env, o, "toUpstream", v) == napi_ok &&
              (v = det_buffer(env, d->to_client, d->to_client_len)) != NULL && napi_set_named_property(env, o, "toClient", v) == napi_ok &&
              napi_create_double(env, (double)d->bytes_in, &v) == napi_ok && napi_set_named_property(env, o, "bytesIn", v) == napi_ok &&
              napi_create_double(env, (double)d->bytes_out, &v) == napi_ok && napi_set_named_property(env, o, "bytesOut", v) == napi_ok &&
              napi_set_element(env, arr, n, o) == napi_ok;
      if (given) n++;
    }
    det_free(it, !given);
    it = next;
  }
  if (ok && n > 0) {
    napi_get_undefined(env, &undef);
    napi_call_function(env, undef, fn, 1, &arr, NULL);
  }
}

static void detach_cleanup(void) {
  /* fe_stop has run (every request answered): drop what JS will not hear. */
  pthread_mutex_lock(&g_det_mu);
  g_det_closing = true;
  det_item *it = g_det_head;
  g_det_head = g_det_tail = NULL;
  pthread_mutex_unlock(&g_det_mu);
  while (it != NULL) {
    det_item *next = it->next;
    det_free(it, true);
    it = next;
  }
  if (g_det_tsfn != NULL) napi_release_threadsafe_function(g_det_tsfn, napi_tsfn_abort);
  g_det_tsfn = NULL;
}

static napi_value js_on_detached(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (g_det_tsfn != NULL) {
    napi_throw_error(env, "ERR_ENGINE", "onDetached already set");
    return NULL;
  }
  napi_value name;
  CHECK(napi_create_string_utf8(env, "fproxy-engine-detach", NAPI_AUTO_LENGTH, &name));
  napi_threadsafe_function tsfn;
  CHECK(napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, NULL, det_call_js, &tsfn));
  /* Never keeps the process alive by itself: a pair being detached is still an open pair (ref'd). */
  CHECK(napi_unref_threadsafe_function(env, tsfn));
  pthread_mutex_lock(&g_det_mu);
  g_det_tsfn = tsfn;
  pthread_mutex_unlock(&g_det_mu);
  return NULL;
}

static napi_value js_detach(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  double id;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_double(env, argv[0], &id));
  if (g_engine == NULL || g_det_tsfn == NULL) {
    napi_throw_error(env, "ERR_ENGINE", "engine not started, or onDetached not set");
    return NULL;
  }
  int rc = fe_detach(g_engine, (uint64_t)id, on_detached, NULL);
  if (rc != 0) return throw_errno(env, "detach", -rc);
  return NULL;
}

NAPI_MODULE(forwarder, init)
