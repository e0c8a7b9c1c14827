/*
 * forwarder.node: the N-API face of engine-core (see engine-core.h). Node keeps accepting and
 * connecting; JS hands each connected pair over as two fds, which are dup()ed here, so the JS
 * sockets can then be destroyed: close() of one descriptor of a shared file description sends
 * nothing (no FIN, no RST) while the dup stays open.
 *
 * Exports: start(threads, onClosed, onAccepted?), add(id, fdClient, fdUpstream, idleMs, preUp, preDown),
 * close(id), drainBy(delayMs), stats(), ref(), unref(); native accept and connect: listen(lid, fd)
 * → the engine's fd, unlisten(lid, thatFd), connect(id, fd, ip, port, timeoutMs, idleMs, preUp), closeFd(fd, reset);
 * handover: onDetached(fn), detach(id) (see the detach block at the end).
 * onClosed(results: Float64Array) gets [id, bytesIn, bytesOut, outcome] × n, one call per batch
 * (connect results too: outcome FE_CONNECTED / FE_CONNECT_*, bytesIn = errno).
 * onAccepted(accepts: Float64Array, addresses: string[]) gets [lid, fd, port] × n and the n client
 * addresses (as Node prints them: "::ffff:127.0.0.1" on a dual-stack socket), in the same call
 * as results when both are waiting.
 *
 * Ownership (accept): g_accept_ref is written on the main thread only; g_accepts/g_naccepts/
 * g_acap are guarded by g_mu like the results (filled by loop threads in on_accept).
 *
 * Ownership: g_engine, g_tsfn, g_refs are written on Node's main thread only (start, the cleanup
 * hook). g_mu guards g_results/g_nresults/g_cap/g_call_pending/g_closing, which loop threads fill
 * (on_done) and the main thread empties (call_js).
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "engine-core.h"

static fe_engine *g_engine;
/* Inline engine (start(0, ...)): its epoll set watched by Node's own loop, its timer a uv timer;
   both main thread only. Neither keeps the process alive (the threadsafe function's ref does). */
static uv_poll_t g_poll;
static uv_timer_t g_timer;
static bool g_inline;
/* Inline engine: Node's thread; a call into JS asked by a turn of the inline loop (main thread
   only); what that call needs (main thread only, set in start). */
static pthread_t g_main;
static bool g_direct;
static napi_env g_env;
static napi_ref g_closed_ref, g_resource_ref;
static napi_async_context g_async;
static napi_threadsafe_function g_tsfn;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static fe_result *g_results;
static size_t g_nresults, g_cap;
static bool g_call_pending, g_closing;
/* Results or accepts queued since the last call into JS was asked for (guarded by g_mu): the loop
   thread asks once at the end of its epoll batch (on_batch_end), not per result, so one wake-up of
   the main thread carries everything a batch produced. */
static bool g_dirty;

typedef struct accepted {
  uint32_t lid;
  int fd;
  uint16_t port;
  char addr[INET6_ADDRSTRLEN];
} accepted;
static napi_ref g_accept_ref;
static accepted *g_accepts;
static size_t g_naccepts, g_acap;
/* When the oldest accept still waiting for JS was queued (ms, monotonic; guarded by g_mu). */
static uint64_t g_accept_oldest_ms;
/* JS has not taken accepts queued this long ago: it is stalled (a hung or paused main thread).
   Connections accepted meanwhile would die with the process if it is then killed as hung; left in
   the kernel's queue they can still migrate (tcp_migrate_req) or go to another worker. */
#define ACCEPT_STALL_MS 100

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

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
    if (!g_call_pending) g_dirty = true;
  }
  pthread_mutex_unlock(&g_mu);
}

/* Loop thread, end of an epoll batch: one threadsafe call for whatever the batch queued. */
static void on_batch_end(void *ctx) {
  (void)ctx;
  bool call = false;
  pthread_mutex_lock(&g_mu);
  if (g_dirty && !g_call_pending && !g_closing) g_call_pending = call = true;
  g_dirty = false;
  pthread_mutex_unlock(&g_mu);
  if (!call) return;
  /* The inline loop's own turn (Node's thread, inside run_inline): JS is called right after it,
     in the same uv callback. Anything else (the offload thread) goes through the threadsafe call. */
  if (g_inline && pthread_equal(pthread_self(), g_main)) g_direct = true;
  else napi_call_threadsafe_function(g_tsfn, NULL, napi_tsfn_nonblocking);
}

/* Loop thread: queue an accepted socket for JS (one threadsafe call per batch, shared with results).
   Returns non-zero (pause accepting) while JS is stalled. */
static int on_accept(uint32_t lid, int fd, const struct sockaddr *peer, socklen_t len, void *ctx) {
  (void)ctx;
  (void)len;
  accepted a = {.lid = lid, .fd = fd, .port = 0};
  if (peer->sa_family == AF_INET6) {
    const struct sockaddr_in6 *p6 = (const struct sockaddr_in6 *)peer;
    inet_ntop(AF_INET6, &p6->sin6_addr, a.addr, sizeof a.addr);
    a.port = ntohs(p6->sin6_port);
  } else if (peer->sa_family == AF_INET) {
    const struct sockaddr_in *p4 = (const struct sockaddr_in *)peer;
    inet_ntop(AF_INET, &p4->sin_addr, a.addr, sizeof a.addr);
    a.port = ntohs(p4->sin_port);
  }
  bool kept = false, stalled = false;
  uint64_t now = mono_ms();
  pthread_mutex_lock(&g_mu);
  if (!g_closing) {
    if (g_naccepts == 0) g_accept_oldest_ms = now;
    else stalled = now - g_accept_oldest_ms > ACCEPT_STALL_MS;
    if (g_naccepts == g_acap) {
      size_t cap = g_acap ? g_acap * 2 : 64;
      accepted *grown = realloc(g_accepts, cap * sizeof *grown);
      if (grown != NULL) {
        g_accepts = grown;
        g_acap = cap;
      }
    }
    if (g_naccepts < g_acap) {
      g_accepts[g_naccepts++] = a;
      kept = true;
      if (!g_call_pending) g_dirty = true;
    }
  }
  pthread_mutex_unlock(&g_mu);
  if (!kept) close(fd); /* shutting down, or out of memory: the client sees the connection close */
  return stalled;
}

/* Main thread: the accepted sockets queued so far, to onAccepted (or closed if there is none). */
static void deliver_accepts(napi_env env, accepted *batch, size_t n) {
  napi_value fn = NULL, ab, nums, addrs, undef, argv[2];
  double *out = NULL;
  bool ok = env != NULL && g_accept_ref != NULL && napi_get_reference_value(env, g_accept_ref, &fn) == napi_ok && fn != NULL &&
            napi_create_arraybuffer(env, n * 3 * sizeof(double), (void **)&out, &ab) == napi_ok &&
            napi_create_typedarray(env, napi_float64_array, n * 3, ab, 0, &nums) == napi_ok &&
            napi_create_array_with_length(env, n, &addrs) == napi_ok;
  for (size_t i = 0; ok && i < n; i++) {
    napi_value str;
    out[3 * i] = (double)batch[i].lid;
    out[3 * i + 1] = (double)batch[i].fd;
    out[3 * i + 2] = (double)batch[i].port;
    ok = napi_create_string_latin1(env, batch[i].addr, NAPI_AUTO_LENGTH, &str) == napi_ok && napi_set_element(env, addrs, (uint32_t)i, str) == napi_ok;
  }
  if (!ok) {
    for (size_t i = 0; i < n; i++) close(batch[i].fd);
    return;
  }
  argv[0] = nums;
  argv[1] = addrs;
  napi_get_undefined(env, &undef);
  napi_call_function(env, undef, fn, 2, argv, NULL);
}

/* Main thread: hand every queued result to JS in one call. */
static void call_js(napi_env env, napi_value fn, void *context, void *data) {
  (void)context;
  (void)data;
  pthread_mutex_lock(&g_mu);
  fe_result *batch = g_results;
  size_t n = g_nresults;
  accepted *acc = g_accepts;
  size_t nacc = g_naccepts;
  g_results = NULL;
  g_nresults = g_cap = 0;
  g_accepts = NULL;
  g_naccepts = g_acap = 0;
  g_call_pending = false;
  pthread_mutex_unlock(&g_mu);
  if (nacc > 0) deliver_accepts(env, acc, nacc);
  free(acc);
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
static void run_inline(void);
static void on_poll(uv_poll_t *h, int status, int events) {
  (void)h;
  (void)status;
  (void)events;
  run_inline();
}
static void on_timer(uv_timer_t *h) {
  (void)h;
  run_inline();
}
static void call_js(napi_env env, napi_value fn, void *context, void *data);

/* Main thread, from a uv callback (no JS on the stack): call_js as the threadsafe function would,
   in a callback scope, so the promises and ticks JS queues run before it returns. An exception
   goes to 'uncaughtException', as one thrown through the threadsafe function does. */
static void call_js_direct(void) {
  napi_env env = g_env;
  napi_handle_scope hs;
  if (napi_open_handle_scope(env, &hs) != napi_ok) return;
  napi_value fn = NULL, resource = NULL;
  napi_callback_scope cs;
  if (napi_get_reference_value(env, g_closed_ref, &fn) == napi_ok && napi_get_reference_value(env, g_resource_ref, &resource) == napi_ok &&
      napi_open_callback_scope(env, resource, g_async, &cs) == napi_ok) {
    call_js(env, fn, NULL, NULL);
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value err;
      if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
    }
    napi_close_callback_scope(env, cs);
  }
  napi_close_handle_scope(env, hs);
}

/* Main thread: a turn of the inline engine, JS called at once with what it produced (accepts to
   decide, results), and another turn to run what JS asked (the connects), so an accepted
   connection is connected within one wake-up of Node's loop; then the loop's next timer. */
#define INLINE_ROUNDS 4
static void run_inline(void) {
  if (g_engine == NULL) return;
  int ms = fe_run(g_engine);
  for (int round = 1; g_direct && round <= INLINE_ROUNDS && g_engine != NULL; round++) {
    g_direct = false;
    call_js_direct();
    if (g_engine == NULL) return; /* stopped from JS (environment teardown) */
    ms = fe_run(g_engine);
  }
  if (g_direct) { /* still more: the next iteration of Node's loop */
    g_direct = false;
    napi_call_threadsafe_function(g_tsfn, NULL, napi_tsfn_nonblocking);
  }
  if (ms < 0) uv_timer_stop(&g_timer);
  else uv_timer_start(&g_timer, on_timer, (uint64_t)ms, 0);
}

static void cleanup(void *arg) {
  (void)arg;
  if (g_inline) {
    uv_poll_stop(&g_poll);
    uv_timer_stop(&g_timer);
    uv_close((uv_handle_t *)&g_poll, NULL);
    uv_close((uv_handle_t *)&g_timer, NULL);
    g_inline = false;
  }
  pthread_mutex_lock(&g_mu);
  g_closing = true;
  pthread_mutex_unlock(&g_mu);
  fe_stop(g_engine);
  g_engine = NULL;
  pthread_mutex_lock(&g_mu);
  free(g_results);
  g_results = NULL;
  g_nresults = g_cap = 0;
  for (size_t i = 0; i < g_naccepts; i++) close(g_accepts[i].fd);
  free(g_accepts);
  g_accepts = NULL;
  g_naccepts = g_acap = 0;
  pthread_mutex_unlock(&g_mu);
  if (g_tsfn != NULL) napi_release_threadsafe_function(g_tsfn, napi_tsfn_abort);
  g_tsfn = NULL;
  detach_cleanup();
}

static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (g_engine != NULL) {
    napi_throw_error(env, "ERR_ENGINE", "engine already started");
    return NULL;
  }
  int32_t threads = 1, offload = 1;
  CHECK(napi_get_value_int32(env, argv[0], &threads));
  if (argc >= 4) CHECK(napi_get_value_int32(env, argv[3], &offload)); /* inline engine: offload threads */
  napi_value name;
  CHECK(napi_create_string_utf8(env, "fproxy-engine", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &g_tsfn));
  /* Referenced only while pairs are open (ref/unref from JS), so an idle engine never keeps the
     process alive. */
  CHECK(napi_unref_threadsafe_function(env, g_tsfn));
  g_engine = threads == 0 ? fe_start_inline(offload, on_done, NULL) : fe_start(threads, on_done, NULL);
  if (g_engine != NULL) fe_set_batch_end_cb(g_engine, on_batch_end, NULL);
  int err = errno;
  if (g_engine != NULL && threads == 0) {
    uv_loop_t *uvl = NULL;
    if (napi_get_uv_event_loop(env, &uvl) != napi_ok || uv_poll_init(uvl, &g_poll, fe_poll_fd(g_engine)) != 0) {
      err = EINVAL;
      fe_stop(g_engine);
      g_engine = NULL;
    } else {
      napi_value resource, rname;
      g_main = pthread_self();
      g_env = env;
      CHECK(napi_create_object(env, &resource));
      CHECK(napi_create_string_utf8(env, "fproxy-engine", NAPI_AUTO_LENGTH, &rname));
      CHECK(napi_create_reference(env, resource, 1, &g_resource_ref));
      CHECK(napi_create_reference(env, argv[1], 1, &g_closed_ref));
      CHECK(napi_async_init(env, resource, rname, &g_async));
      uv_timer_init(uvl, &g_timer);
      uv_unref((uv_handle_t *)&g_poll);
      uv_unref((uv_handle_t *)&g_timer);
      uv_poll_start(&g_poll, UV_READABLE, on_poll);
      g_inline = true;
    }
  }
  if (g_engine == NULL) {
    napi_release_threadsafe_function(g_tsfn, napi_tsfn_abort);
    g_tsfn = NULL;
    return throw_errno(env, "cannot start the engine threads", err);
  }
  if (argc > 2) {
    napi_valuetype t;
    CHECK(napi_typeof(env, argv[2], &t));
    if (t == napi_function) {
      CHECK(napi_create_reference(env, argv[2], 1, &g_accept_ref));
      fe_set_accept_cb(g_engine, on_accept, NULL);
    }
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

/* setOffload(busyPct, hotBytes, settle): an inline engine's offload thresholds and whether settled
   (keep-alive) pairs move (tests change them). */
static napi_value js_set_offload(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  double pct, bytes;
  bool settle = true, connected = true;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_double(env, argv[0], &pct));
  CHECK(napi_get_value_double(env, argv[1], &bytes));
  if (argc >= 3) CHECK(napi_get_value_bool(env, argv[2], &settle));
  if (argc >= 4) CHECK(napi_get_value_bool(env, argv[3], &connected));
  if (g_engine != NULL && g_inline) fe_set_offload(g_engine, pct > 0 ? (uint32_t)pct : 0, bytes > 0 ? (uint64_t)bytes : 0, settle, connected);
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
  CHECK(napi_create_double(env, (double)s.offloaded, &v));
  CHECK(napi_set_named_property(env, obj, "offloaded", v));
  CHECK(napi_create_double(env, (double)s.ring_loops, &v));
  CHECK(napi_set_named_property(env, obj, "ringLoops", v));
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
/* listen(lid, fd): accept on a dup of Node's listening fd (the caller then closes its server). */
static napi_value js_listen(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint32_t lid;
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_uint32(env, argv[0], &lid));
  CHECK(napi_get_value_int32(env, argv[1], &fd));
  if (g_engine == NULL || g_accept_ref == NULL) {
    napi_throw_error(env, "ERR_ENGINE", "engine not started with an accept callback");
    return NULL;
  }
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return throw_errno(env, "dup(listener)", errno);
  /* O_NONBLOCK belongs to the open file description, shared with Node's fd: set it anyway. */
  int fl = fcntl(d, F_GETFL);
  if (fl < 0 || fcntl(d, F_SETFL, fl | O_NONBLOCK) < 0) {
    int err = errno;
    close(d);
    return throw_errno(env, "listener O_NONBLOCK", err);
  }
  int rc = fe_listen(g_engine, lid, d);
  if (rc != 0) return throw_errno(env, "listen", -rc);
  napi_value out;
  CHECK(napi_create_int32(env, d, &out));
  return out; /* the engine's descriptor, for unlisten */
}

static napi_value js_unlisten(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint32_t lid;
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_uint32(env, argv[0], &lid));
  CHECK(napi_get_value_int32(env, argv[1], &fd));
  if (g_engine != NULL) fe_unlisten(g_engine, lid, fd);
  return NULL;
}

/* connect(id, fd, ip, port, timeoutMs, idleMs, preUp): the engine holds fd until the result. */
static napi_value js_connect(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  double id;
  int32_t fd;
  uint32_t port, timeout, idle;
  char ip[64];
  size_t iplen;
  void *up;
  size_t up_len;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_double(env, argv[0], &id));
  CHECK(napi_get_value_int32(env, argv[1], &fd));
  CHECK(napi_get_value_string_latin1(env, argv[2], ip, sizeof ip, &iplen));
  CHECK(napi_get_value_uint32(env, argv[3], &port));
  CHECK(napi_get_value_uint32(env, argv[4], &timeout));
  CHECK(napi_get_value_uint32(env, argv[5], &idle));
  if (!get_bytes(env, argv[6], &up, &up_len)) {
    napi_throw_type_error(env, "ERR_ENGINE", "preUp must be a Buffer or null");
    return NULL;
  }
  if (g_engine == NULL) {
    napi_throw_error(env, "ERR_ENGINE", "engine not started");
    return NULL;
  }
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len;
  struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
  if (port > 65535) {
    napi_throw_range_error(env, "ERR_ENGINE", "port out of range");
    return NULL;
  }
  if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    len = sizeof *s4;
  } else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    len = sizeof *s6;
  } else {
    napi_throw_type_error(env, "ERR_ENGINE", "not an IP address");
    return NULL;
  }
  int rc = fe_connect(g_engine, (uint64_t)id, fd, (struct sockaddr *)&ss, len, timeout, idle, up, up_len);
  if (rc != 0) return throw_errno(env, "connect", -rc);
  return NULL;
}

/* closeFd(fd, reset): close a socket JS holds (accepted, not handed to a pair): FIN, or RST. */
static napi_value js_close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  bool reset = false;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  if (argc > 1) CHECK(napi_get_value_bool(env, argv[1], &reset));
  if (fd < 0) return NULL;
  if (reset) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  close(fd);
  return NULL;
}

/* waitReadable(id, fd, timeoutMs): watch an accepted client fd for its first bytes (fe_wait_readable);
   the answer comes as a result with outcome 10 (readable) or 11 (timed out). */
static napi_value js_wait_readable(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  double id;
  int32_t fd;
  uint32_t timeout;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_double(env, argv[0], &id));
  CHECK(napi_get_value_int32(env, argv[1], &fd));
  CHECK(napi_get_value_uint32(env, argv[2], &timeout));
  if (g_engine == NULL) {
    napi_throw_error(env, "ERR_ENGINE", "engine not started");
    return NULL;
  }
  int rc = fe_wait_readable(g_engine, (uint64_t)id, fd, timeout);
  if (rc != 0) return throw_errno(env, "waitReadable", -rc);
  return NULL;
}

/* recv(fd, buffer): one non-blocking read of a client fd JS holds, into `buffer`: the byte count,
   0 at EOF, or -errno (-EAGAIN: nothing yet). The fd is accepted non-blocking, so it never waits. */
static napi_value js_recv(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  void *data;
  size_t len;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    napi_throw_type_error(env, "ERR_ENGINE", "recv needs a Buffer");
    return NULL;
  }
  ssize_t n;
  do n = recv(fd, data, len, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  napi_value out;
  CHECK(napi_create_int32(env, n < 0 ? -errno : (int32_t)n, &out));
  return out;
}

/* localAddress(fd): [address, port] of a socket JS holds (getsockname), or null. Only PROXY-out
   apps ask (the header names where the client connected), so accepts don't pay for it. */
static napi_value js_local_address(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char text[INET6_ADDRSTRLEN];
  unsigned port;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) goto none;
  if (ss.ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
    if (inet_ntop(AF_INET, &a->sin_addr, text, sizeof text) == NULL) goto none;
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
    if (inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text) == NULL) goto none;
    port = ntohs(a->sin6_port);
  } else {
    goto none;
  }
  CHECK(napi_create_array_with_length(env, 2, &out));
  CHECK(napi_create_string_latin1(env, text, NAPI_AUTO_LENGTH, &v));
  CHECK(napi_set_element(env, out, 0, v));
  CHECK(napi_create_uint32(env, port, &v));
  CHECK(napi_set_element(env, out, 1, v));
  return out;
none:
  CHECK(napi_get_null(env, &out));
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"start", NULL, js_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"add", NULL, js_add, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"drainBy", NULL, js_drain_by, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setOffload", NULL, js_set_offload, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ref", NULL, js_ref, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unref", NULL, js_unref, NULL, NULL, NULL, napi_enumerable, NULL},
      {"onDetached", NULL, js_on_detached, NULL, NULL, NULL, napi_enumerable, NULL},
      {"detach", NULL, js_detach, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listen", NULL, js_listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unlisten", NULL, js_unlisten, NULL, NULL, NULL, napi_enumerable, NULL},
      {"connect", NULL, js_connect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeFd", NULL, js_close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"waitReadable", NULL, js_wait_readable, NULL, NULL, NULL, napi_enumerable, NULL},
      {"recv", NULL, js_recv, NULL, NULL, NULL, napi_enumerable, NULL},
      {"localAddress", NULL, js_local_address, NULL, NULL, NULL, napi_enumerable, NULL},
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
