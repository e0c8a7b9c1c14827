/*
 * engine-core: the native socket engine's forwarding loops, without any Node API (so a plain C
 * test driver can run it under ASan/TSan). A caller hands over a pair of connected, non-blocking
 * sockets (fds the engine then owns); a loop thread forwards bytes both ways until the pair ends,
 * then reports one fe_result through the done callback, on that loop thread.
 *
 * Threads: fe_start/fe_add/fe_close/fe_drain_by/fe_stats/fe_stop may be called from any one
 * "owner" thread (Node's main thread in the addon); fe_add may also be called from several threads
 * at once (the stress driver does). Everything else happens on the loop threads.
 */
#ifndef FPROXY_ENGINE_CORE_H
#define FPROXY_ENGINE_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum fe_outcome {
  FE_OK = 0,             /* both sides sent FIN and every byte was handed to the kernel */
  FE_CLIENT_ERROR = 1,   /* the client side failed (reset, error): the upstream was reset */
  FE_UPSTREAM_ERROR = 2, /* the upstream side failed: the client was reset */
  FE_IDLE_TIMEOUT = 3,   /* no byte either way for idle_ms: both closed */
  FE_DRAINED = 4,        /* closed by fe_close, the drain deadline or fe_stop */
};

typedef struct fe_result {
  uint64_t id;
  uint64_t bytes_in;  /* bytes received from the client side */
  uint64_t bytes_out; /* bytes sent to the client side (preludes included) */
  int outcome;        /* enum fe_outcome */
} fe_result;

/* Called on a loop thread, once per closed pair; must not call back into the engine. */
typedef void (*fe_done_cb)(const fe_result *r, void *ctx);

typedef struct fe_stats {
  uint64_t pairs;          /* pairs open (added and not yet reported) */
  uint64_t buffers_in_use; /* user-space buffers held by pairs (0 when every pair is idle) */
  uint64_t buffers_pooled; /* free buffers kept for reuse */
  uint64_t offloaded;      /* pairs an inline engine moved to its offload thread, ever */
  uint64_t ring_loops;     /* loop threads forwarding through io_uring (the rest use epoll) */
} fe_stats;

typedef struct fe_engine fe_engine;

/*
 * Starts `threads` loop threads. NULL with errno set on failure.
 * threads 0: an "inline" loop with no thread of its own: the owner thread runs it, one non-blocking
 * turn per fe_run, whenever fe_poll_fd is readable or the timeout fe_run returned has passed. Every
 * pair starts there and every call is made on that thread: no hand-off between threads per
 * connection. Plus one offload loop thread, which only adopts pairs the inline loop moves to it
 * while it is busy and they move many bytes (so a process with several bulk streams uses a second
 * core); its done callbacks come from that thread.
 */
fe_engine *fe_start(int threads, fe_done_cb cb, void *ctx);

/* An inline engine (as fe_start(0)) with `offload_threads` offload loop threads (1-63), which take
   moved pairs in turn (hot ones: where the fewest hot pairs are). */
fe_engine *fe_start_inline(int offload_threads, fe_done_cb cb, void *ctx);

/*
 * Inline engine, owner thread: when the inline loop moves pairs to its offload thread — it was busy
 * for busy_pct % of a 100 ms window and a pair read hot_bytes in it (defaults 50 %, 4 MiB); a pair
 * that lived a window and moved bytes in the next (settle, default on); the pairs the inline loop
 * connects (fe_connect) are forwarded by it and its offload threads in turn, those whose turn is an
 * offload thread's moved once connected (connected, default on: accepts, decisions and connects
 * stay on the owner's thread). Tests and the stress change them to make moves happen, or not.
 */
void fe_set_offload(fe_engine *e, uint32_t busy_pct, uint64_t hot_bytes, bool settle, bool connected);

/* Inline engine: the fd to watch for readability (the loop's epoll set); -1 for a threaded one. */
int fe_poll_fd(fe_engine *e);

/*
 * Inline engine: one turn (events ready now, commands, timers, the batch-end callback). Returns the
 * ms until the loop's next timer (idle scan, connect deadline, drain deadline), or -1 for none.
 */
int fe_run(fe_engine *e);

/*
 * Hands a pair over: the engine owns both fds from here (closes them, also on failure).
 * pre_up: bytes to send to the upstream before anything read from the client; pre_down: bytes
 * to send to the client first (both copied). idle_ms 0 = no idle timeout. Returns 0 or -errno.
 */
int fe_add(fe_engine *e, uint64_t id, int fd_client, int fd_upstream, uint32_t idle_ms,
           const void *pre_up, size_t pre_up_len, const void *pre_down, size_t pre_down_len);

/* Closes pair `id` (outcome FE_DRAINED) if it is still open. Asynchronous. */
void fe_close(fe_engine *e, uint64_t id);

/* As fe_close, but both sides get a RST (SO_LINGER 0) instead of a FIN. Asynchronous. */
void fe_reset(fe_engine *e, uint64_t id);

/* Closes every pair open `delay_ms` from now (outcome FE_DRAINED). Asynchronous. */
void fe_drain_by(fe_engine *e, uint64_t delay_ms);

void fe_get_stats(fe_engine *e, fe_stats *out);

/* Closes every pair (reported as FE_DRAINED), joins the threads, frees everything. */
void fe_stop(fe_engine *e);

/* ---- detach (issue 16: hand a pair over to another process) ---- */

enum fe_detach_status {
  FE_DETACHED = 0,           /* the fds and the pending bytes are the caller's now */
  FE_DETACH_GONE = 1,        /* no open pair with that id (already closed and reported, or unknown) */
  FE_DETACH_HALF_CLOSED = 2, /* a FIN passed one way or a side hung up: not moved, it keeps draining */
};

typedef struct fe_detached {
  uint64_t id;
  int status;                   /* enum fe_detach_status */
  int fd_client, fd_upstream;   /* FE_DETACHED: open, blocking mode as given, ours no more; else -1 */
  const void *to_upstream;      /* read from the client, not yet sent to the upstream */
  size_t to_upstream_len;
  const void *to_client;        /* read from the upstream, not yet sent to the client */
  size_t to_client_len;
  uint64_t bytes_in, bytes_out; /* as fe_result (to_upstream is counted in bytes_in already) */
} fe_detached;

/*
 * Called once per fe_detach, on a loop thread (or in fe_stop for a request no loop saw); the
 * buffers are valid only during the call (copy them). Must not call back into the engine.
 */
typedef void (*fe_detach_cb)(const fe_detached *d, void *ctx);

/*
 * Takes pair `id` out of the engine at a clean point, asynchronously, on its loop thread: both
 * sockets leave the epoll set first (so nothing more is read), what waits in the pair's buffers is
 * handed back, and the pair ends without a done report (the caller owns both fds and must close
 * them). A half-closed pair stays (FE_DETACH_HALF_CLOSED). Returns 0, or -ENOMEM (cb not called).
 */
int fe_detach(fe_engine *e, uint64_t id, fe_detach_cb cb, void *ctx);

/*
 * ---- Native accept and connect (stage 3: no Node socket per connection) ----
 *
 * The engine owns listening sockets (fe_listen) and accepts on a loop thread, reporting each
 * accepted socket through the accept callback with the client's address; the caller decides and
 * then asks the engine to connect that client to an endpoint (fe_connect). Connect results come
 * through the done callback, with these outcomes:
 *   FE_CONNECTED: the pair forwards from now on, exactly as after fe_add (a close report follows);
 *   FE_CONNECT_*: the attempt failed (bytes_in: the errno); the pair is gone and the client fd is
 *     the caller's again, still open (it may try fe_connect again, or close it).
 * fe_close/fe_reset/fe_drain_by/fe_stop also close a pair that is still connecting (both fds).
 */
enum {
  FE_CONNECTED = 5,
  FE_CONNECT_REFUSED = 6,     /* ECONNREFUSED */
  FE_CONNECT_TIMEOUT = 7,     /* no answer within timeout_ms */
  FE_CONNECT_UNREACHABLE = 8, /* any other error (EHOSTUNREACH, ENETUNREACH, EMFILE ...) */
  FE_UNLISTENED = 9,          /* id: a lid; its socket is closed and every accept on it was reported */
  FE_READABLE = 10,           /* fe_wait_readable: input, a FIN or an error waits on the fd; it is the caller's again */
  FE_READ_TIMEOUT = 11,       /* fe_wait_readable: nothing within timeout_ms; the fd is the caller's again */
  FE_ACCEPT_FAILED = 12,      /* id: a lid; accept4 failed for want of descriptors or memory (bytes_in: the
                                 errno): the listener pauses ACCEPT_RETRY_MS; reported once per pause */
};

/*
 * Called on a loop thread per accepted socket (non-blocking, close-on-exec: the callee owns it).
 * Returns 0 to go on accepting, or non-zero to leave the rest in the kernel's queue for a while
 * (the caller is not keeping up: a connection accepted here dies with this process, one left in
 * the queue can still migrate to another listener or be taken by another worker).
 */
typedef int (*fe_accept_cb)(uint32_t lid, int fd, const struct sockaddr *peer, socklen_t len, void *ctx);

/*
 * Called by each loop thread at the end of every epoll batch (after its done/accept callbacks of
 * that batch), so a caller can hand everything a batch produced on in one go. Set once, before
 * the first fe_add/fe_connect/fe_listen.
 */
typedef void (*fe_batch_end_cb)(void *ctx);
void fe_set_batch_end_cb(fe_engine *e, fe_batch_end_cb cb, void *ctx);

/* Sets the accept callback; call once, before the first fe_listen. */
void fe_set_accept_cb(fe_engine *e, fe_accept_cb cb, void *ctx);

/*
 * Accept on `fd` (a bound, listening, non-blocking socket the engine owns from here, also on
 * failure) under the caller's id `lid`. Returns 0 or -errno.
 */
int fe_listen(fe_engine *e, uint32_t lid, int fd);

/*
 * Stops accepting on `lid` at once, as a JS server.close() would (the kernel no longer hands it
 * connections when this returns); its fd (the one given to fe_listen) is closed asynchronously,
 * then the done callback reports {id: lid, outcome: FE_UNLISTENED}, after every accept on it.
 */
void fe_unlisten(fe_engine *e, uint32_t lid, int fd);

/*
 * Connects client `fd_client` (an accepted socket) to `peer` within timeout_ms (0: the kernel's
 * own timeout) and forwards once connected (pre_up first, idle_ms as in fe_add). The engine holds
 * fd_client until the connect result; on a -errno return it stays the caller's.
 */
int fe_connect(fe_engine *e, uint64_t id, int fd_client, const struct sockaddr *peer, socklen_t len,
               uint32_t timeout_ms, uint32_t idle_ms, const void *pre_up, size_t pre_up_len);

/*
 * Watches accepted client `fd_client` for input (its first bytes: a PROXY header, a TLS
 * ClientHello) within timeout_ms (0: none), under id `id`, then gives it back through the done
 * callback: FE_READABLE (the caller reads it: bytes, EOF, or an error; EAGAIN, wait again) or
 * FE_READ_TIMEOUT. The caller reads with the fd in hand, so the bytes never cross a thread.
 * fe_close/fe_reset/fe_drain_by/fe_stop close a waiting fd (FE_DRAINED), as a connecting one.
 * Returns 0 or -errno (the fd stays the caller's).
 */
int fe_wait_readable(fe_engine *e, uint64_t id, int fd_client, uint32_t timeout_ms);

#endif
