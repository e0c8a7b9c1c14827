/*
 * engine-core: epoll loop threads that forward bytes between the two sockets of each pair.
 *
 * Ownership (who may touch what):
 *   - fe_engine fields set in fe_start (loops, nloops, cb, ctx) are written once before any loop
 *     thread starts and only read afterwards. `next_loop` and the stats counters are atomics.
 *   - loop.mu guards loop.q_head/q_tail (the command queue, filled by any thread, emptied by the
 *     loop thread).
 *   - Everything else in a loop (its epoll set, its pairs list, its buffer pool, its deadline) and
 *     every pair after its ADD command is taken off the queue belong to that loop's thread alone.
 *     Before that, a pair belongs to the thread calling fe_add, which does not touch it once queued.
 *
 * Invariants:
 *   - Only the loop thread calls epoll_ctl on its epoll set, and EPOLL_CTL_DEL before close(): a
 *     registration belongs to the open file description, not the fd number, so a dup() elsewhere
 *     would otherwise keep delivering events for a closed fd. Except a pair's sockets that only
 *     the engine ever had (fe_connect: accepted and connected here, `own_fds`): no other
 *     descriptor refers to them — the host process must not fork while they are open (a
 *     listener never does) — so close() alone removes them (two epoll_ctl less per connection).
 *   - A closed pair is unlinked at once but freed only at the end of the epoll batch: both of its
 *     sockets may have events in the same batch (they are skipped via `closed`).
 *   - dir[i].b != NULL exactly while bytes read from side i wait to be sent to side 1-i; side i is
 *     not read meanwhile (backpressure), and an idle pair holds no buffer.
 *   - A FIN read from side i becomes shutdown(SHUT_WR) on side 1-i once dir[i] is flushed; the
 *     other direction keeps flowing. Sockets arrive connected, so shutdown never hits a socket
 *     still connecting (which would abort it).
 *   - An error on one side closes it and resets the other (SO_LINGER 0, then close).
 *   - send() always uses MSG_NOSIGNAL: a SIGPIPE would kill the host process.
 *   - A forwarding side is in the epoll set edge-triggered (ensure_registered): an input edge is
 *     read until a short read without EPOLLRDHUP, EAGAIN or EOF; a pair stopped by
 *     READS_PER_EVENT with input left goes on l->more and is pumped the next turn (which then
 *     does not block). Waits and listening sockets stay level-triggered.
 */
#define _GNU_SOURCE
#include "engine-core.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>
#include <unistd.h>
#ifdef FE_URING
#include <liburing.h>
#include <poll.h>
#include <sys/mman.h>
#endif

#define BUF_SIZE 65536   /* the loopback MTU: one send, one skb (16 KiB: 1.33x less 1-stream throughput at 1.7x the CPU per GB) */
#define POOL_MAX 64      /* free buffers kept per loop (4 MiB) */
#define MAX_EVENTS 256
/* offload (inline engine, see offload_check) */
#define OFFLOAD_WINDOW_MS 100
#define OFFLOAD_BUSY_PCT 50          /* of the window spent in the inline loop's turns */
#define OFFLOAD_HOT_BYTES (4u << 20) /* read by a pair in one window (~335 Mbit/s) */
#define READS_PER_EVENT 4 /* recv/send rounds per pair and turn while the peer keeps up (then: l->more) */

typedef struct buf {
  struct buf *next; /* pool link */
  uint32_t cap;
  char data[];
} buf;

typedef struct dirn { /* bytes read from side i, waiting for side 1-i */
  buf *b;
  uint32_t start, end;
} dirn;

typedef struct side {
  int fd;
  bool registered; /* in the epoll set */
  /* Forwarding, a side is registered once for input and output, edge-triggered (see
     ensure_registered); these keep what the edges said until a read or send says otherwise. */
  bool rd_ready;   /* may have input (or EOF, or an error) not read yet */
  bool wr_ready;   /* may take output: no send has hit EAGAIN since its last EPOLLOUT edge */
  bool rdhup;      /* EPOLLRDHUP seen: its FIN is in (a short read may leave it unread) */
  bool rd_eof;     /* its FIN was read */
  bool wr_shut;    /* we sent it our FIN (shutdown SHUT_WR) */
  bool hup;        /* EPOLLHUP seen: both ways shut (or reset) */
} side;

typedef struct pair {
  struct pair *prev, *next; /* the loop's list of open pairs; `next` also links the dead list */
  uint64_t id;
  uint64_t last_ms; /* last byte either way */
  uint64_t rd[2];   /* bytes received from side i */
  uint64_t wr[2];   /* bytes sent to side i */
  uint32_t idle_ms;
  side s[2]; /* 0: client, 1: upstream */
  dirn d[2];
  bool closed;
  /* native connect (fe_connect): while `connecting`, s[1] is the socket being connected (s[0] is
     not in the epoll set), idle_ms is 0 and the pair's idle timeout waits in idle_after_connect */
  bool connecting;
  /* fe_wait_readable: a `connecting` pair whose s[0] (only) is watched for input until the
     deadline in connect_deadline_ms; it then hands s[0] back (FE_READABLE / FE_READ_TIMEOUT) */
  bool waiting;
  bool own_fds; /* fe_connect: both sockets were created here (accept4, socket), never dup()ed */
  uint64_t win_mark; /* inline loop: rd[0] + rd[1] at the start of the offload window */
  bool settled;      /* inline loop: in the list at the start of the offload window */
  bool in_more;      /* in l->more: input left unread after READS_PER_EVENT rounds */
  bool hand_off;     /* inline loop: connected here, to be moved to offload loop hand_to this turn */
  uint8_t hand_to;
  bool moved_hot;    /* moved to the offload loop as hot: counted in its hot_open while open */
  struct pair *more_next;
  uint32_t idle_after_connect;
  uint64_t connect_deadline_ms; /* 0: none */
  /* ring mode (see "io_uring forwarding"): the pair's recv/send go through its loop's ring */
  bool ring;
  bool rx[2];        /* a recv from side i is in flight */
  bool tx[2];        /* a send of d[i] (to side 1-i) is in flight */
  uint32_t rbuf[2];  /* d[i]'s bytes are in provided buffer rbuf[i]-1 (0: in d[i].b, if any) */
  uint32_t inflight; /* ring ops not completed yet; a closed pair is freed when it drops to 0 */
  bool zombie;       /* closed with ops in flight: freed by their last completion */
  struct detach_req *detach; /* a detach waiting for the pair's ops to end (ring mode) */
} pair;

enum { CMD_ADD, CMD_CLOSE, CMD_RESET, CMD_DRAIN, CMD_STOP, CMD_CONNECT, CMD_LISTEN, CMD_UNLISTEN, CMD_WAIT };
enum { CMD_DETACH = 16 }; /* fe_detach (block at the end of this file) */
enum { CMD_ADOPT = 17 };  /* a pair moved here by the inline loop (offload) */
struct detach_req;
typedef struct cmd {
  struct cmd *next;
  int type;
  uint64_t arg; /* CLOSE: id; DRAIN: absolute deadline (ms, monotonic) */
  pair *p;      /* ADD */
  struct detach_req *req; /* DETACH */
} cmd;

typedef struct loop {
  struct fe_engine *eng;
  pthread_t thr;
  int ep, evfd;
  pthread_mutex_t mu; /* guards q_head/q_tail */
  cmd *q_head, *q_tail;
  /* loop thread only: */
  pair *pairs;
  pair *dead;
  pair *more; /* pairs with input left unread (no new edge will come for it): pumped next turn */
  buf *pool;
  size_t npool;
  uint64_t deadline_ms; /* 0: none */
  uint64_t next_scan_ms;
  uint32_t min_idle_ms; /* smallest idle_ms among open pairs at the last scan or add (0: none) */
  bool stop;
  bool inline_loop; /* fe_start(0): no thread; the owner runs turns with fe_run (written once) */
  atomic_uint open;  /* pairs in this loop's list (its thread writes; the inline loop reads the offload's) */
  atomic_uint hot_open; /* offload loop: pairs moved here as hot and not closed yet (both threads) */
  uint64_t win_start_ms, win_busy_us; /* inline loop only: the offload window */
  uint32_t off_busy_pct;              /* inline loop only: fe_set_offload (owner thread) */
  uint64_t off_hot_bytes;
  bool off_settle;
  bool off_connected;   /* inline loop only: pairs it connects move to the offload loop at once */
  uint32_t hand_offs;   /* inline loop only: pairs marked hand_off in this turn */
  uint32_t conn_turn;   /* inline loop only: which loop forwards the next pair it connects */
  cmd stop_cmd; /* pushed by fe_stop: stopping needs no allocation */
  /* loop thread only (native accept and connect): */
  struct lsn *lsns;         /* listening sockets this loop accepts on */
  struct lsn *dead_lsns;    /* unlistened in this batch: freed after it (events may still name them) */
  uint64_t next_connect_ms; /* earliest connect deadline at the last scan (0: none) */
  uint64_t next_retry_ms;   /* earliest re-arm of a listener paused by EMFILE (0: none) */
#ifdef FE_URING
  /* loop thread only (ring mode, set up in loop_main): */
  bool ring_on;
  bool ep_armed;  /* the multishot poll on `ep` is in place */
  bool ep_again;  /* the last look into `ep` found events: look again (level-triggered leftovers) */
  uint32_t zombies;
  struct io_uring ring;
  struct io_uring_buf_ring *br; /* provided buffers (group 0) */
  char *br_mem;
  uint32_t br_n;
#endif
} loop;

struct fe_engine {
  loop *loops;
  int nloops;
  atomic_uint next_loop;
  fe_done_cb cb;
  void *ctx;
  atomic_uint_fast64_t pairs, bufs_in_use, bufs_pooled, offloaded, ring_loops;
  pthread_mutex_t bcast_mu; /* a command pushed to every loop vs. the offload's moves (offload_check) */
  /* set once by fe_set_accept_cb before the first fe_listen (whose queue mutex publishes it) */
  fe_accept_cb accept_cb;
  void *accept_ctx;
  /* set once by fe_set_batch_end_cb, from the owner thread while the loops already run: atomic
     (release there, acquire in the loops, which then read ctx) */
  _Atomic(fe_batch_end_cb) batch_end_cb;
  void *batch_end_ctx;
};

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- buffers (pool: loop thread only) ---- */

static buf *buf_alloc(fe_engine *e, uint32_t cap) {
  buf *b = malloc(sizeof(buf) + cap);
  if (b == NULL) return NULL;
  b->cap = cap;
  b->next = NULL;
  atomic_fetch_add_explicit(&e->bufs_in_use, 1, memory_order_relaxed);
  return b;
}

static buf *buf_get(loop *l) {
  buf *b = l->pool;
  if (b == NULL) return buf_alloc(l->eng, BUF_SIZE);
  l->pool = b->next;
  l->npool--;
  atomic_fetch_sub_explicit(&l->eng->bufs_pooled, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&l->eng->bufs_in_use, 1, memory_order_relaxed);
  return b;
}

static void buf_put(loop *l, buf *b) {
  if (b == NULL) return;
  atomic_fetch_sub_explicit(&l->eng->bufs_in_use, 1, memory_order_relaxed);
  if (b->cap != BUF_SIZE || l->npool >= POOL_MAX) {
    free(b);
    return;
  }
  b->next = l->pool;
  l->pool = b;
  l->npool++;
  atomic_fetch_add_explicit(&l->eng->bufs_pooled, 1, memory_order_relaxed);
}

#ifdef FE_URING
static void ring_buf_return(loop *l, uint32_t bid);
#endif

/* The bytes d[i] holds (from its own buffer, or a ring mode provided one), NULL if none. */
static const char *dir_data(loop *l, pair *p, int i) {
  dirn *d = &p->d[i];
#ifdef FE_URING
  if (p->rbuf[i] != 0) return l->br_mem + (size_t)(p->rbuf[i] - 1) * BUF_SIZE + d->start;
#else
  (void)l;
#endif
  return d->b != NULL && d->end > d->start ? d->b->data + d->start : NULL;
}

/* d[i] gives its buffer back (nothing in flight may use it). */
static void release_dir(loop *l, pair *p, int i) {
#ifdef FE_URING
  if (p->rbuf[i] != 0) ring_buf_return(l, p->rbuf[i] - 1);
  p->rbuf[i] = 0;
#endif
  buf_put(l, p->d[i].b);
  p->d[i] = (dirn){0};
}

/* ---- the loop's list of open pairs (loop thread only; `open` counts it for the offload) ---- */

static void link_pair(loop *l, pair *p) {
  p->prev = NULL;
  p->next = l->pairs;
  if (l->pairs != NULL) l->pairs->prev = p;
  l->pairs = p;
  atomic_fetch_add_explicit(&l->open, 1, memory_order_relaxed);
}

static void unlink_pair(loop *l, pair *p) {
  if (p->prev != NULL) p->prev->next = p->next;
  else l->pairs = p->next;
  if (p->next != NULL) p->next->prev = p->prev;
  atomic_fetch_sub_explicit(&l->open, 1, memory_order_relaxed);
  if (p->moved_hot) atomic_fetch_sub_explicit(&l->hot_open, 1, memory_order_relaxed);
  if (p->hand_off) { /* closed or detached before its move: hand_off's count stays exact */
    p->hand_off = false;
    l->hand_offs--;
  }
}

/* ---- epoll registration (loop thread only) ---- */

static void *tag(pair *p, int i) { return (void *)((uintptr_t)p | (uintptr_t)i); }

#define RESET_BOTH 2
static void close_pair(loop *l, pair *p, int outcome, int reset_side);

/* A forwarding side is registered once, for input and output, edge-triggered, and never
   modified: what each edge said is kept in rd_ready / wr_ready, and the pair acts on it when it
   can (a side held back by backpressure is simply not read; the kernel's window does the rest).
   Level-triggered, as before, every reported socket was polled again by the next epoll_wait, and
   each change of interest (connected, backpressure, EOF) cost an EPOLL_CTL_MOD: 4 epoll_ctl per
   short connection, 2 now. EPOLL_CTL_ADD reports what is already pending (ep_insert polls the
   socket), so no input that arrived before it is missed. Returns false if the pair closed. */
static bool ensure_registered(loop *l, pair *p, int i) {
  side *s = &p->s[i];
  if (s->registered) return true;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = tag(p, i)};
  if (epoll_ctl(l->ep, EPOLL_CTL_ADD, s->fd, &ev) == 0) {
    s->registered = true;
    return true;
  }
  /* ENOMEM or max_user_watches: the side would never be heard from again. */
  close_pair(l, p, i == 0 ? FE_CLIENT_ERROR : FE_UPSTREAM_ERROR, RESET_BOTH);
  return false;
}

static void want_more(loop *l, pair *p) {
  if (p->in_more) return;
  p->in_more = true;
  p->more_next = l->more;
  l->more = p;
}

/* ---- closing ---- */

/* reset_side: the side that gets a RST (0 client, 1 upstream), RESET_BOTH, or -1 for none. */
#ifdef FE_URING
static void ring_close(loop *l, pair *p, int reset_side);
static void ring_start(loop *l, pair *p, uint64_t now);
static void ring_turn(loop *l, int timeout);
static bool ring_setup(loop *l);
static void ring_teardown(loop *l);
static bool ring_detach(loop *l, pair *p, struct detach_req *r);
#endif

static void close_pair(loop *l, pair *p, int outcome, int reset_side) {
  if (p->closed) return;
  p->closed = true;
#ifdef FE_URING
  if (p->ring) {
    ring_close(l, p, reset_side);
  } else
#endif
  for (int i = 0; i < 2; i++) {
    side *s = &p->s[i];
    /* A socket only this engine ever had (accepted and connected here, never dup()ed) leaves
       the epoll set with its close(); a dup()ed one must leave it first (see the top). */
    if (s->registered && !p->own_fds) epoll_ctl(l->ep, EPOLL_CTL_DEL, s->fd, NULL);
    s->registered = false;
    if (i == reset_side || reset_side == RESET_BOTH) {
      struct linger lg = {.l_onoff = 1, .l_linger = 0};
      setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(s->fd);
    s->fd = -1;
    buf_put(l, p->d[i].b);
    p->d[i].b = NULL;
  }
  unlink_pair(l, p);
  p->prev = NULL;
  if (!p->zombie) {
    p->next = l->dead; /* freed at the end of the batch */
    l->dead = p;
  }
  fe_result r = {.id = p->id, .bytes_in = p->rd[0], .bytes_out = p->wr[0], .outcome = outcome};
  l->eng->cb(&r, l->eng->ctx);
  /* After the callback: a reader that sees `pairs` drop to 0 knows every report was made (the
   * stress driver reuses its job slots then; TSan caught a report racing that reuse). Release
   * pairs with an acquire load in fe_get_stats. */
  atomic_fetch_sub_explicit(&l->eng->pairs, 1, memory_order_release);
}

/* Side i failed: close it, reset the other. */
static void fail(loop *l, pair *p, int i) {
  close_pair(l, p, i == 0 ? FE_CLIENT_ERROR : FE_UPSTREAM_ERROR, 1 - i);
}

/* ---- forwarding ---- */

/* Sends what waits in dir[from] to the other side; passes a FIN on once it is empty.
   Returns false if the pair closed. */
static bool flush(loop *l, pair *p, int from, uint64_t now) {
  dirn *d = &p->d[from];
  int to = 1 - from;
  while (d->b != NULL && d->start < d->end) {
    ssize_t n = send(p->s[to].fd, d->b->data + d->start, d->end - d->start, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      d->start += (uint32_t)n;
      p->wr[to] += (uint64_t)n;
      p->last_ms = now;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      p->s[to].wr_ready = false; /* its EPOLLOUT edge brings us back */
      break;
    } else {
      fail(l, p, to);
      return false;
    }
  }
  if (d->b != NULL && d->start == d->end) {
    buf_put(l, d->b);
    d->b = NULL;
  }
  if (d->b == NULL && p->s[from].rd_eof && !p->s[to].wr_shut) {
    p->s[to].wr_shut = true;
    /* The last FIN of the pair (side `to` sent its own FIN, which we read, and the other way is
       done): the pair closes right below, and close() sends this FIN itself — after whatever is
       still queued, and not a RST, as nothing unread can follow a FIN we read. One syscall less
       per connection. */
    if (!(p->s[to].rd_eof && p->s[from].wr_shut)) shutdown(p->s[to].fd, SHUT_WR); /* an error here shows up as an event on that side */
  }
  if (p->s[0].rd_eof && p->s[1].rd_eof && p->s[0].wr_shut && p->s[1].wr_shut) {
    close_pair(l, p, FE_OK, -1);
    return false;
  }
  return true;
}

/* Moves what it can from side `from` to the other: what waits first, then new input while the
   other side takes it, up to READS_PER_EVENT reads (then the pair goes on l->more: no edge would
   come for input already there). Returns false if the pair closed. */
static bool pump(loop *l, pair *p, int from, uint64_t now) {
  dirn *d = &p->d[from];
  side *s = &p->s[from];
  int to = 1 - from;
  for (int round = 0;; round++) {
    if (d->b != NULL) {
      if (!p->s[to].wr_ready) return true;
      if (!flush(l, p, from, now)) return false;
      if (d->b != NULL) return true; /* the other side is full */
    }
    if (s->rd_eof || !s->rd_ready) return true;
    if (round == READS_PER_EVENT) {
      want_more(l, p);
      return true;
    }
    buf *b = buf_get(l);
    if (b == NULL) { /* out of memory: try again next turn */
      want_more(l, p);
      return true;
    }
    size_t cap = b->cap; /* b may be back in the pool (or freed) once flushed */
    ssize_t n = recv(s->fd, b->data, cap, MSG_DONTWAIT);
    if (n > 0) {
      p->rd[from] += (uint64_t)n;
      p->last_ms = now;
      d->b = b;
      d->start = 0;
      d->end = (uint32_t)n;
      /* A short read emptied the socket's queue: whatever comes after it is a new edge. But not
         a FIN that was already in: the next recv() returns it, and no edge would (nginx keeps
         reading after EPOLLRDHUP the same way). */
      if ((size_t)n < cap && !s->rdhup) s->rd_ready = false;
    } else if (n == 0) {
      buf_put(l, b);
      s->rd_eof = true;
      s->rd_ready = false;
      return flush(l, p, from, now); /* passes the FIN on */
    } else {
      buf_put(l, b);
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        s->rd_ready = false;
        return true;
      }
      if (errno == EINTR) continue;
      fail(l, p, from);
      return false;
    }
  }
}

static bool progress(loop *l, pair *p, uint64_t now) { return pump(l, p, 0, now) && pump(l, p, 1, now); }

static void connect_event(loop *l, pair *p, uint32_t ev, uint64_t now);
static void wait_done(loop *l, pair *p, int outcome);

static void on_event(loop *l, pair *p, int i, uint32_t ev, uint64_t now) {
  /* Waiting, only s[0] is registered; connecting, only s[1]. Input, a hang-up or an error all
     end a wait: the caller's read tells which. */
  if (p->waiting) return wait_done(l, p, FE_READABLE);
  if (p->connecting) return connect_event(l, p, ev, now);
  if (ev & EPOLLERR) {
    fail(l, p, i);
    return;
  }
  side *s = &p->s[i];
  if (ev & EPOLLRDHUP) s->rdhup = true;
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) s->rd_ready = true;
  if (ev & (EPOLLOUT | EPOLLHUP)) s->wr_ready = true; /* after a hang-up a send fails: that is the news */
  if (ev & EPOLLHUP) s->hup = true;
  progress(l, p, now);
}

/* Pairs left with unread input by the last turn (READS_PER_EVENT, or no buffer): before the dead
   are freed, so a pair closed since is still there to be skipped. */
static void run_more(loop *l, uint64_t now) {
  pair *m = l->more;
  l->more = NULL;
  while (m != NULL) {
    pair *next = m->more_next;
    m->in_more = false;
    if (!m->closed) progress(l, m, now);
    m = next;
  }
}

/* ---- commands (queue: any thread → loop) ---- */

static void push_cmd(loop *l, cmd *c) {
  c->next = NULL;
  pthread_mutex_lock(&l->mu);
  bool was_empty = l->q_head == NULL;
  if (l->q_tail != NULL) l->q_tail->next = c;
  else l->q_head = c;
  l->q_tail = c;
  pthread_mutex_unlock(&l->mu);
  /* The loop drains the whole queue after reading the eventfd, so one wake-up per batch will do. */
  if (was_empty) {
    uint64_t one = 1;
    ssize_t w;
    do w = write(l->evfd, &one, sizeof one);
    while (w < 0 && errno == EINTR);
  }
}

/* Preludes (or, for a pair moved here, what waited in its buffers) first; then both sides join
   the epoll set, and what they may already hold is read. Sends are tried until one says EAGAIN. */
static void start_forwarding(loop *l, pair *p, uint64_t now) {
#ifdef FE_URING
  if (l->ring_on) return ring_start(l, p, now);
#endif
  for (int i = 0; i < 2; i++) p->s[i].wr_ready = true;
  for (int i = 0; i < 2; i++) {
    if (p->d[i].b != NULL && !flush(l, p, i, now)) return;
  }
  if (!ensure_registered(l, p, 0) || !ensure_registered(l, p, 1)) return;
  progress(l, p, now);
}

static void add_pair(loop *l, pair *p, uint64_t now) {
  link_pair(l, p);
  p->last_ms = now;
  if (p->idle_ms > 0 && (l->min_idle_ms == 0 || p->idle_ms < l->min_idle_ms)) {
    l->min_idle_ms = p->idle_ms;
    l->next_scan_ms = 0;
  }
  start_forwarding(l, p, now);
}

static void run_detach(loop *l, struct detach_req *r);
static void detach_unseen(struct detach_req *r);
static void run_native_command(loop *l, cmd *c, uint64_t now);

static void run_commands(loop *l, uint64_t now) {
  uint64_t v;
  ssize_t r;
  do r = read(l->evfd, &v, sizeof v);
  while (r < 0 && errno == EINTR);
  pthread_mutex_lock(&l->mu);
  cmd *c = l->q_head;
  l->q_head = l->q_tail = NULL;
  pthread_mutex_unlock(&l->mu);
  while (c != NULL) {
    cmd *next = c->next;
    switch (c->type) {
      case CMD_ADD:
      case CMD_ADOPT:
        add_pair(l, c->p, now);
        break;
      case CMD_CLOSE: /* O(open pairs): only drains and resets close pairs one by one */
      case CMD_RESET:
        for (pair *p = l->pairs; p != NULL; p = p->next) {
          if (p->id == c->arg) {
            close_pair(l, p, FE_DRAINED, c->type == CMD_RESET ? RESET_BOTH : -1);
            break;
          }
        }
        break;
      case CMD_DRAIN:
        l->deadline_ms = c->arg;
        break;
      case CMD_STOP:
        l->stop = true;
        break;
      case CMD_DETACH:
        run_detach(l, c->req);
        break;
      case CMD_CONNECT:
      case CMD_WAIT:
      case CMD_LISTEN:
      case CMD_UNLISTEN:
        run_native_command(l, c, now);
        break;
    }
    if (c != &l->stop_cmd) free(c);
    c = next;
  }
}

/* Idle timeouts and the drain deadline. */
static void run_timers(loop *l, uint64_t now) {
  if (l->deadline_ms != 0 && now >= l->deadline_ms) {
    l->deadline_ms = 0;
    while (l->pairs != NULL) close_pair(l, l->pairs, FE_DRAINED, -1);
  }
  if (l->min_idle_ms == 0 || now < l->next_scan_ms) return;
  uint32_t min_idle = 0;
  for (pair *p = l->pairs, *next; p != NULL; p = next) {
    next = p->next;
    if (p->idle_ms == 0) continue;
    if (now - p->last_ms >= p->idle_ms) {
      close_pair(l, p, FE_IDLE_TIMEOUT, -1);
      continue;
    }
    if (min_idle == 0 || p->idle_ms < min_idle) min_idle = p->idle_ms;
  }
  l->min_idle_ms = min_idle;
  /* Checked 8 times per the shortest idle timeout (5 ms .. 1 s apart): late by at most 1/8. */
  uint64_t step = min_idle / 8;
  if (step < 5) step = 5;
  if (step > 1000) step = 1000;
  l->next_scan_ms = now + step;
}

static int wait_timeout(loop *l, uint64_t now) {
  if (l->more != NULL) return 0; /* input already waiting: no edge will announce it */
  uint64_t until = UINT64_MAX;
  if (l->deadline_ms != 0) until = l->deadline_ms;
  if (l->min_idle_ms != 0 && l->next_scan_ms < until) until = l->next_scan_ms;
  if (l->next_connect_ms != 0 && l->next_connect_ms < until) until = l->next_connect_ms;
  if (l->next_retry_ms != 0 && l->next_retry_ms < until) until = l->next_retry_ms;
  if (until == UINT64_MAX) return -1;
  if (until <= now) return 0;
  uint64_t ms = until - now;
  return ms > 60000 ? 60000 : (int)ms;
}

static void free_dead(loop *l) {
  while (l->dead != NULL) {
    pair *p = l->dead;
    l->dead = p->next;
    free(p);
  }
}

static void on_accept(loop *l, struct lsn *ls, uint64_t now);
static void run_native_timers(loop *l, uint64_t now);
static void free_native(loop *l);

/* One epoll batch (waiting up to `timeout` ms), then timers, frees and the batch-end callback. */
static int epoll_batch(loop *l, int timeout) {
  struct epoll_event evs[MAX_EVENTS];
  int n = epoll_wait(l->ep, evs, MAX_EVENTS, timeout);
  if (n < 0) n = 0; /* EINTR */
  uint64_t now = now_ms();
  for (int k = 0; k < n; k++) {
    void *ptr = evs[k].data.ptr;
    if (ptr == NULL) {
      run_commands(l, now);
      continue;
    }
    if ((uintptr_t)ptr & 2) { /* a listening socket (tag 2; pairs use bit 0 for the side) */
      on_accept(l, (struct lsn *)((uintptr_t)ptr & ~(uintptr_t)3), now);
      continue;
    }
    pair *p = (pair *)((uintptr_t)ptr & ~(uintptr_t)1);
    /* ring: left the epoll set in this batch (ring_start); hand_off: moves at the end of it */
    if (p->closed || p->ring || p->hand_off) continue;
    on_event(l, p, (int)((uintptr_t)ptr & 1), evs[k].events, now);
  }
  return n;
}

/* After a batch (epoll's or the ring's): pairs with input left, timers, frees, the callback. */
static void end_turn(loop *l) {
  uint64_t now = now_ms();
  run_more(l, now);
  run_timers(l, now);
  run_native_timers(l, now);
  free_dead(l);
  fe_batch_end_cb end = atomic_load_explicit(&l->eng->batch_end_cb, memory_order_acquire);
  if (end != NULL) end(l->eng->batch_end_ctx);
}

static void loop_turn(loop *l, int timeout) {
  epoll_batch(l, timeout);
  end_turn(l);
}

static void loop_close_all(loop *l) {
  while (l->pairs != NULL) close_pair(l, l->pairs, FE_DRAINED, -1);
  free_dead(l);
}

static void *loop_main(void *arg) {
  loop *l = arg;
#ifdef FE_URING
  if (ring_setup(l)) {
    while (!l->stop) ring_turn(l, wait_timeout(l, now_ms()));
    loop_close_all(l);
    ring_teardown(l);
    return NULL;
  }
#endif
  while (!l->stop) loop_turn(l, wait_timeout(l, now_ms()));
  loop_close_all(l);
  return NULL;
}

/* ---- public API ---- */

static void free_listen_cmd(cmd *c);

static void free_loop(loop *l) {
  /* loop thread joined: whatever is still queued (never seen by it) is ours now */
  for (cmd *c = l->q_head, *next; c != NULL; c = next) {
    next = c->next;
    if (c->type == CMD_ADD || c->type == CMD_CONNECT || c->type == CMD_WAIT) {
      for (int i = 0; i < 2; i++) {
        if (c->p->s[i].fd >= 0) close(c->p->s[i].fd);
        buf_put(l, c->p->d[i].b);
      }
      atomic_fetch_sub_explicit(&l->eng->pairs, 1, memory_order_relaxed);
      free(c->p);
    }
    if (c->type == CMD_DETACH) detach_unseen(c->req);
    if (c->type == CMD_LISTEN) free_listen_cmd(c);
    if (c != &l->stop_cmd) free(c);
  }
  free_native(l);
  while (l->pool != NULL) {
    buf *b = l->pool;
    l->pool = b->next;
    free(b);
    atomic_fetch_sub_explicit(&l->eng->bufs_pooled, 1, memory_order_relaxed);
  }
  if (l->ep >= 0) close(l->ep);
  if (l->evfd >= 0) close(l->evfd);
  pthread_mutex_destroy(&l->mu);
}

static fe_engine *start_engine(bool inline_loop, int threads, fe_done_cb cb, void *ctx);

fe_engine *fe_start(int threads, fe_done_cb cb, void *ctx) {
  if (threads == 0) return start_engine(true, 2, cb, ctx); /* the inline loop and its offload thread */
  return start_engine(false, threads, cb, ctx);
}

fe_engine *fe_start_inline(int offload_threads, fe_done_cb cb, void *ctx) {
  if (offload_threads < 1 || offload_threads > 63) {
    errno = EINVAL;
    return NULL;
  }
  return start_engine(true, 1 + offload_threads, cb, ctx);
}

static fe_engine *start_engine(bool inline_loop, int threads, fe_done_cb cb, void *ctx) {
  if (threads < 1 || threads > 64 || cb == NULL) {
    errno = EINVAL;
    return NULL;
  }
  fe_engine *e = calloc(1, sizeof *e);
  if (e == NULL) return NULL;
  e->loops = calloc((size_t)threads, sizeof(loop));
  if (e->loops == NULL) {
    free(e);
    return NULL;
  }
  e->cb = cb;
  e->ctx = ctx;
  atomic_init(&e->next_loop, 0);
  pthread_mutex_init(&e->bcast_mu, NULL);
  atomic_init(&e->pairs, 0);
  atomic_init(&e->bufs_in_use, 0);
  atomic_init(&e->bufs_pooled, 0);
  int started = 0, err = 0;
  for (; started < threads; started++) {
    loop *l = &e->loops[started];
    l->eng = e;
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    l->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&l->mu, NULL);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    l->inline_loop = inline_loop && started == 0;
    l->off_busy_pct = OFFLOAD_BUSY_PCT;
    l->off_hot_bytes = OFFLOAD_HOT_BYTES;
    l->off_settle = true;
    l->off_connected = true;
    if (l->ep < 0 || l->evfd < 0 || epoll_ctl(l->ep, EPOLL_CTL_ADD, l->evfd, &ev) != 0 ||
        (!l->inline_loop && (err = pthread_create(&l->thr, NULL, loop_main, l)) != 0)) {
      if (err == 0) err = errno;
      free_loop(l);
      break;
    }
  }
  e->nloops = started;
  if (started < threads) {
    fe_stop(e);
    errno = err;
    return NULL;
  }
  return e;
}

/* A new pair's loop: the inline loop when there is one (its offload loop only adopts), else the
   threads in turn. */
static loop *pick_loop(fe_engine *e) {
  if (e->loops[0].inline_loop) return &e->loops[0];
  unsigned k = atomic_fetch_add_explicit(&e->next_loop, 1, memory_order_relaxed);
  return &e->loops[k % (unsigned)e->nloops];
}

/* A listening socket's loop (inline: always the inline one). */
static loop *listen_loop(fe_engine *e, uint32_t lid) {
  return e->loops[0].inline_loop ? &e->loops[0] : &e->loops[lid % (unsigned)e->nloops];
}

static buf *copy_buf(fe_engine *e, const void *data, size_t len) {
  if (data == NULL || len == 0) return NULL;
  buf *b = buf_alloc(e, len > BUF_SIZE ? (uint32_t)len : BUF_SIZE);
  if (b != NULL) memcpy(b->data, data, len);
  return b;
}

int fe_add(fe_engine *e, uint64_t id, int fd_client, int fd_upstream, uint32_t idle_ms,
           const void *pre_up, size_t pre_up_len, const void *pre_down, size_t pre_down_len) {
  pair *p = calloc(1, sizeof *p);
  cmd *c = calloc(1, sizeof *c);
  if (pre_up_len > UINT32_MAX || pre_down_len > UINT32_MAX) {
    free(p);
    free(c);
    close(fd_client);
    close(fd_upstream);
    return -EINVAL;
  }
  buf *up = copy_buf(e, pre_up, pre_up_len), *down = copy_buf(e, pre_down, pre_down_len);
  if (p == NULL || c == NULL || (pre_up_len > 0 && up == NULL) || (pre_down_len > 0 && down == NULL)) {
    free(p);
    free(c);
    /* not from any loop's pool: plain frees, counted back */
    if (up != NULL) atomic_fetch_sub_explicit(&e->bufs_in_use, 1, memory_order_relaxed);
    if (down != NULL) atomic_fetch_sub_explicit(&e->bufs_in_use, 1, memory_order_relaxed);
    free(up);
    free(down);
    close(fd_client);
    close(fd_upstream);
    return -ENOMEM;
  }
  p->id = id;
  p->idle_ms = idle_ms;
  p->s[0].fd = fd_client;
  p->s[1].fd = fd_upstream;
  p->d[0] = (dirn){.b = up, .start = 0, .end = (uint32_t)pre_up_len};
  p->d[1] = (dirn){.b = down, .start = 0, .end = (uint32_t)pre_down_len};
  c->type = CMD_ADD;
  c->p = p;
  atomic_fetch_add_explicit(&e->pairs, 1, memory_order_relaxed);
  push_cmd(pick_loop(e), c);
  return 0;
}

static void broadcast(fe_engine *e, int type, uint64_t arg) {
  pthread_mutex_lock(&e->bcast_mu);
  for (int i = 0; i < e->nloops; i++) {
    cmd *c = calloc(1, sizeof *c);
    if (c == NULL) continue;
    c->type = type;
    c->arg = arg;
    push_cmd(&e->loops[i], c);
  }
  pthread_mutex_unlock(&e->bcast_mu);
}

void fe_close(fe_engine *e, uint64_t id) { broadcast(e, CMD_CLOSE, id); }
void fe_reset(fe_engine *e, uint64_t id) { broadcast(e, CMD_RESET, id); }

void fe_drain_by(fe_engine *e, uint64_t delay_ms) { broadcast(e, CMD_DRAIN, now_ms() + delay_ms + 1); }

int fe_poll_fd(fe_engine *e) { return e->loops[0].inline_loop ? e->loops[0].ep : -1; }

static void offload_check(loop *l, uint64_t now, uint64_t busy_us);

int fe_run(fe_engine *e) {
  loop *l = &e->loops[0];
  uint64_t t0 = now_us();
  loop_turn(l, 0);
  uint64_t t1 = now_us();
  offload_check(l, t1 / 1000, t1 - t0);
  return wait_timeout(l, now_ms());
}

/* ---- offload (inline engine): hot pairs move to the offload loop thread ----
 *
 * An inline engine forwards on Node's thread, one core. A listener process that got several bulk
 * streams (the kernel's SO_REUSEPORT hash splits connections between worker processes blindly: 4
 * streams over 2 workers land 3-1 or 4-0 five times in eight) would leave the other core idle, so
 * the inline loop moves pairs that are moving a lot of bytes to its offload loop (loops[1], a thread
 * of its own) while it is busy. A pair moves at most once; short connections never do (no hand-off
 * between threads for them). The move happens after the turn, on the inline loop's thread: the
 * pair leaves its epoll set and its list, then the offload loop adopts it through its command
 * queue (FIFO: a close, reset or detach asked after the move is queued behind the adoption there;
 * one asked before it was run by the inline loop in this turn, see below).
 */

void fe_set_offload(fe_engine *e, uint32_t busy_pct, uint64_t hot_bytes, bool settle, bool connected) {
  e->loops[0].off_busy_pct = busy_pct;
  e->loops[0].off_hot_bytes = hot_bytes;
  e->loops[0].off_settle = settle;
  e->loops[0].off_connected = connected;
}

/* Hot: read at least off_hot_bytes in this window (a bulk stream). Settled: a pair that was here
   when the window began (it has lived 100-200 ms), moved bytes in it, and is not hot — a
   keep-alive connection. Settled pairs always move (with off_settle): forwarding them on a thread
   of its own costs less per exchange than on Node's loop (no nested epoll, no turn of libuv per
   wake-up: keep-alive CPU per request 14.7 -> 13.35 µs in alternating runs with every pair on a
   loop thread), and a connection that lived that long pays the one hand-off over many exchanges.
   Short connections end before they settle, so accept, decide, connect and close keep the
   one-thread path. Hot pairs move only while the inline loop is busy, and one stays (see above). */
static bool is_hot(const loop *l, const pair *p) { return p->rd[0] + p->rd[1] - p->win_mark >= l->off_hot_bytes; }
static bool is_settled(const loop *l, const pair *p) {
  uint64_t moved = p->rd[0] + p->rd[1] - p->win_mark;
  return l->off_settle && p->settled && moved > 0 && moved < l->off_hot_bytes;
}

/* The offload loops take moved pairs in turn; a hot one goes where the fewest hot pairs are. */
static loop *next_offload(fe_engine *e) {
  unsigned k = atomic_fetch_add_explicit(&e->next_loop, 1, memory_order_relaxed);
  return &e->loops[1 + k % (unsigned)(e->nloops - 1)];
}

static loop *least_hot_offload(fe_engine *e) {
  loop *best = &e->loops[1];
  for (int i = 2; i < e->nloops; i++)
    if (atomic_load_explicit(&e->loops[i].hot_open, memory_order_relaxed) < atomic_load_explicit(&best->hot_open, memory_order_relaxed)) best = &e->loops[i];
  return best;
}

/* One pair leaves the inline loop for offload loop `off` (the caller holds bcast_mu, see below). */
static bool move_pair(loop *l, pair *p, loop *off, bool as_hot) {
  fe_engine *e = l->eng;
  cmd *c = calloc(1, sizeof *c);
  if (c == NULL) return false;
  for (int i = 0; i < 2; i++) {
    if (p->s[i].registered) epoll_ctl(l->ep, EPOLL_CTL_DEL, p->s[i].fd, NULL);
    p->s[i].registered = false;
  }
  unlink_pair(l, p);
  p->prev = p->next = NULL;
  if (as_hot) {
    p->moved_hot = true; /* after unlink_pair here: only the offload loop's unlink counts it off */
    atomic_fetch_add_explicit(&off->hot_open, 1, memory_order_relaxed);
  }
  atomic_fetch_add_explicit(&e->offloaded, 1, memory_order_relaxed);
  c->type = CMD_ADOPT;
  c->p = p;
  push_cmd(off, c); /* the pair is the offload loop's from here */
  return true;
}

/* Pairs connected in this turn (off_connected) move now; one that cannot stays and forwards here.
   They were linked (at the head) when their connect started, so the walk stops after the newest few. */
static void hand_off(loop *l) {
  fe_engine *e = l->eng;
  uint64_t now = now_ms();
  pthread_mutex_lock(&e->bcast_mu);
  run_commands(l, now); /* as in offload_check: a command for every loop meets the pair here or there */
  for (pair *p = l->pairs, *next; p != NULL && l->hand_offs > 0; p = next) {
    next = p->next;
    if (!p->hand_off) continue;
    p->hand_off = false;
    l->hand_offs--;
    if (!move_pair(l, p, &e->loops[p->hand_to], false)) start_forwarding(l, p, now);
  }
  l->hand_offs = 0;
  pthread_mutex_unlock(&e->bcast_mu);
}

static void offload_check(loop *l, uint64_t now, uint64_t busy_us) {
  fe_engine *e = l->eng;
  if (e->nloops < 2) return;
  l->win_busy_us += busy_us;
  if (l->win_start_ms == 0) l->win_start_ms = now;
  if (l->hand_offs > 0) hand_off(l);
  if (now - l->win_start_ms < OFFLOAD_WINDOW_MS) return;
  uint64_t span_us = (now - l->win_start_ms) * 1000;
  bool busy = l->win_busy_us * 100 >= span_us * l->off_busy_pct;
  l->win_start_ms = now;
  l->win_busy_us = 0;
  unsigned hot = 0, settled = 0;
  for (pair *p = l->pairs; p != NULL; p = p->next) {
    if (p->closed || p->connecting) continue;
    if (is_hot(l, p)) hot++;
    else if (is_settled(l, p)) settled++;
  }
  /* Hot pairs already on the offload loop that has fewest (counted at the move, so none is counted
     twice): settled keep-alive pairs there do not hold hot ones back. */
  unsigned there = atomic_load_explicit(&least_hot_offload(e)->hot_open, memory_order_relaxed);
  bool move_hot = busy && hot > there + 1;
  if (move_hot || settled > 0) {
    /* A command for every loop (close, reset, drain, detach) is pushed to all of them under
       bcast_mu, and the moves happen under it too: such a command is either queued here before
       the moves (run just below, while the pair is still here; the offload loop gets its copy
       before the adoption) or pushed after them (queued there behind the adoption). Either way it
       meets the pair. (Node makes every call on this thread, between turns; the stress does not.) */
    pthread_mutex_lock(&e->bcast_mu);
    run_commands(l, now);
    for (pair *p = l->pairs, *next; p != NULL; p = next) {
      next = p->next;
      if (p->closed || p->connecting || p->in_more) continue; /* in_more: on this loop's l->more */
      bool as_hot = is_hot(l, p);
      loop *off;
      if (as_hot) {
        if (!move_hot) continue;
        off = least_hot_offload(e); /* its hot_open counts this move at once: the next goes elsewhere */
        if (hot <= atomic_load_explicit(&off->hot_open, memory_order_relaxed) + 1) continue;
        hot--;
      } else if (is_settled(l, p)) {
        off = next_offload(e);
      } else {
        continue;
      }
      if (!move_pair(l, p, off, as_hot)) break;
    }
    pthread_mutex_unlock(&e->bcast_mu);
  }
  for (pair *p = l->pairs; p != NULL; p = p->next) {
    p->win_mark = p->rd[0] + p->rd[1];
    p->settled = true;
  }
}

void fe_get_stats(fe_engine *e, fe_stats *out) {
  out->pairs = atomic_load_explicit(&e->pairs, memory_order_acquire);
  out->buffers_in_use = atomic_load_explicit(&e->bufs_in_use, memory_order_relaxed);
  out->buffers_pooled = atomic_load_explicit(&e->bufs_pooled, memory_order_relaxed);
  out->offloaded = atomic_load_explicit(&e->offloaded, memory_order_relaxed);
  out->ring_loops = atomic_load_explicit(&e->ring_loops, memory_order_relaxed);
}

void fe_stop(fe_engine *e) {
  if (e == NULL) return;
  for (int i = 0; i < e->nloops; i++) {
    if (e->loops[i].inline_loop) continue;
    e->loops[i].stop_cmd.type = CMD_STOP;
    push_cmd(&e->loops[i], &e->loops[i].stop_cmd);
  }
  for (int i = 0; i < e->nloops; i++) {
    if (e->loops[i].inline_loop) {
      /* the caller is this loop's thread: what is still queued is freed unseen, as after a join */
      loop_close_all(&e->loops[i]);
    } else {
      pthread_join(e->loops[i].thr, NULL);
    }
    free_loop(&e->loops[i]);
  }
  free(e->loops);
  pthread_mutex_destroy(&e->bcast_mu);
  free(e);
}

/* ---- detach (issue 16): take a pair out at a clean point, fds and pending bytes to the caller ----
 *
 * A request goes to every loop (a pair's loop is not recorded anywhere but in its list). The loop
 * that has the pair answers; each loop then counts itself off, and the last one answers "gone" if
 * nobody had it. `found` is written before that loop's count-off (release) and read by the last one
 * after its own (acquire), so exactly one answer is given. Commands are FIFO per loop, so a pair
 * added before fe_detach was called is in its loop's list when the request is run there.
 */
typedef struct detach_req {
  uint64_t id;
  fe_detach_cb cb;
  void *ctx;
  atomic_int remaining; /* loops that have not run (or dropped) the request yet */
  atomic_bool found;
} detach_req;

static void detach_count_off(detach_req *r) {
  if (atomic_fetch_sub_explicit(&r->remaining, 1, memory_order_acq_rel) != 1) return;
  if (!atomic_load_explicit(&r->found, memory_order_acquire)) {
    fe_detached d = {.id = r->id, .status = FE_DETACH_GONE, .fd_client = -1, .fd_upstream = -1};
    r->cb(&d, r->ctx);
  }
  free(r);
}

/* A queued request no loop thread will run (fe_stop joined it): counted off all the same. */
static void detach_unseen(detach_req *r) { detach_count_off(r); }

/* Not at a clean point (a FIN went one way, or still connecting): the pair stays and forwards on. */
static void detach_half_closed(pair *p, detach_req *r) {
  atomic_store_explicit(&r->found, true, memory_order_release);
  fe_detached d = {.id = p->id, .fd_client = -1, .fd_upstream = -1, .bytes_in = p->rd[0], .bytes_out = p->wr[0],
                   .status = FE_DETACH_HALF_CLOSED};
  r->cb(&d, r->ctx);
  detach_count_off(r);
}

static void detach_answer(loop *l, pair *p, detach_req *r);

static void run_detach(loop *l, detach_req *r) {
  pair *p = l->pairs;
  while (p != NULL && p->id != r->id) p = p->next;
  if (p == NULL) {
    detach_count_off(r);
    return;
  }
  bool half = false;
  for (int i = 0; i < 2; i++) half = half || p->s[i].rd_eof || p->s[i].wr_shut || p->s[i].hup;
  half = half || p->connecting; /* not forwarding yet (fe_connect): not a clean point either */
  if (half) return detach_half_closed(p, r);
#ifdef FE_URING
  if (p->ring && ring_detach(l, p, r)) return; /* answered once its ops have ended */
#endif
  detach_answer(l, p, r);
}

/* The pair leaves this loop for the caller: fds and the bytes waiting in its buffers. */
static void detach_answer(loop *l, pair *p, detach_req *r) {
  atomic_store_explicit(&r->found, true, memory_order_release);
  fe_detached d = {.id = p->id, .fd_client = -1, .fd_upstream = -1, .bytes_in = p->rd[0], .bytes_out = p->wr[0]};
  /* Out of the epoll set before anything else: no byte is read from here on. */
  for (int i = 0; i < 2; i++) {
    if (p->s[i].registered) epoll_ctl(l->ep, EPOLL_CTL_DEL, p->s[i].fd, NULL);
    p->s[i].registered = false;
  }
  p->closed = true; /* its events later in this batch are skipped; freed at the end of it */
  unlink_pair(l, p);
  p->prev = NULL;
  p->next = l->dead;
  l->dead = p;
  d.status = FE_DETACHED;
  d.fd_client = p->s[0].fd;
  d.fd_upstream = p->s[1].fd;
  /* d[0]: read from the client for the upstream; d[1]: read from the upstream for the client. */
  d.to_upstream = dir_data(l, p, 0);
  if (d.to_upstream != NULL) d.to_upstream_len = p->d[0].end - p->d[0].start;
  d.to_client = dir_data(l, p, 1);
  if (d.to_client != NULL) d.to_client_len = p->d[1].end - p->d[1].start;
  r->cb(&d, r->ctx);
  for (int i = 0; i < 2; i++) {
    p->s[i].fd = -1; /* the caller's now */
    release_dir(l, p, i);
  }
  /* As close_pair: after the answer, so a reader that sees 0 pairs knows every answer was given. */
  atomic_fetch_sub_explicit(&l->eng->pairs, 1, memory_order_release);
  detach_count_off(r);
}

int fe_detach(fe_engine *e, uint64_t id, fe_detach_cb cb, void *ctx) {
  if (cb == NULL) return -EINVAL;
  detach_req *r = calloc(1, sizeof *r);
  cmd **cs = calloc((size_t)e->nloops, sizeof *cs);
  bool ok = r != NULL && cs != NULL;
  for (int i = 0; ok && i < e->nloops; i++) ok = (cs[i] = calloc(1, sizeof(cmd))) != NULL;
  if (!ok) {
    for (int i = 0; cs != NULL && i < e->nloops; i++) free(cs[i]);
    free(cs);
    free(r);
    return -ENOMEM;
  }
  r->id = id;
  r->cb = cb;
  r->ctx = ctx;
  atomic_init(&r->remaining, e->nloops);
  atomic_init(&r->found, false);
  pthread_mutex_lock(&e->bcast_mu);
  for (int i = 0; i < e->nloops; i++) {
    cs[i]->type = CMD_DETACH;
    cs[i]->req = r;
    push_cmd(&e->loops[i], cs[i]);
  }
  pthread_mutex_unlock(&e->bcast_mu);
  free(cs);
  return 0;
}

/* ---- native accept and connect (stage 3) ----
 *
 * Ownership: an lsn belongs to the thread calling fe_listen until its CMD_LISTEN is queued, then
 * to the loop thread of loop[lid % nloops] alone (its epoll registration, its retry time, its
 * close). A pair made by fe_connect belongs to the calling thread until its CMD_CONNECT is
 * queued, then to the loop thread it was queued to, like any pair. While it connects, only s[1]
 * is in the epoll set; the client fd s[0] is held, not watched. A failed connect gives s[0] back
 * to the caller (not closed) through the done callback, after which the pair is freed.
 */

#define ACCEPTS_PER_EVENT 64 /* then back to epoll, so one busy port cannot starve the pairs */
#define ACCEPT_RETRY_MS 100  /* a listener paused (EMFILE/ENFILE, or its caller stalled) is re-armed this much later */

typedef struct lsn {
  struct lsn *next; /* the loop's list, or its dead list once unlistened */
  uint32_t lid;
  int fd;
  bool registered;
  bool closed; /* unlistened: later events of the same batch skip it */
  uint64_t retry_ms; /* 0: armed; else when to re-arm it */
} lsn;

typedef struct connect_cmd {
  cmd c; /* first: run_commands/free_loop free the whole thing through it */
  struct sockaddr_storage peer;
  socklen_t len;
  uint32_t timeout_ms;
} connect_cmd;

typedef struct listen_cmd {
  cmd c; /* first, as above */
  lsn *ls;
} listen_cmd;

static void free_listen_cmd(cmd *c) {
  lsn *ls = ((listen_cmd *)c)->ls;
  if (ls == NULL) return;
  close(ls->fd);
  free(ls);
}

static void free_dead_lsns(loop *l) {
  while (l->dead_lsns != NULL) {
    lsn *ls = l->dead_lsns;
    l->dead_lsns = ls->next;
    free(ls);
  }
}

static void free_native(loop *l) {
  free_dead_lsns(l);
  while (l->lsns != NULL) {
    lsn *ls = l->lsns;
    l->lsns = ls->next;
    if (ls->registered) epoll_ctl(l->ep, EPOLL_CTL_DEL, ls->fd, NULL);
    close(ls->fd);
    free(ls);
  }
}

static bool arm_listener(loop *l, lsn *ls) {
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = (void *)((uintptr_t)ls | 2)};
  ls->registered = epoll_ctl(l->ep, EPOLL_CTL_ADD, ls->fd, &ev) == 0;
  return ls->registered;
}

/* Out of the epoll set for ACCEPT_RETRY_MS (run_native_timers re-arms it). */
static void pause_listener(loop *l, lsn *ls, uint64_t now) {
  epoll_ctl(l->ep, EPOLL_CTL_DEL, ls->fd, NULL);
  ls->registered = false;
  ls->retry_ms = now + ACCEPT_RETRY_MS;
  if (l->next_retry_ms == 0 || ls->retry_ms < l->next_retry_ms) l->next_retry_ms = ls->retry_ms;
}

static void on_accept(loop *l, lsn *ls, uint64_t now) {
  if (ls->closed) return; /* unlistened earlier in this batch */
  for (int k = 0; k < ACCEPTS_PER_EVENT; k++) {
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    int fd = accept4(ls->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      if (l->eng->accept_cb(ls->lid, fd, (struct sockaddr *)&peer, len, l->eng->accept_ctx) == 0) continue;
      pause_listener(l, ls, now);
      return;
    }
    if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
    if (errno == EINVAL) { /* shut down by fe_unlisten: no longer listening; CMD_UNLISTEN follows */
      epoll_ctl(l->ep, EPOLL_CTL_DEL, ls->fd, NULL);
      ls->registered = false;
      return;
    }
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      /* Out of descriptors or memory: the level-triggered listener would wake us at once again.
         Leave the queue to the kernel (the JS path's libuv does the same, less politely) and
         look again a little later. The caller hears of it (its log and counts), once per pause. */
      fe_result r = {.id = ls->lid, .bytes_in = (uint64_t)errno, .bytes_out = 0, .outcome = FE_ACCEPT_FAILED};
      pause_listener(l, ls, now);
      l->eng->cb(&r, l->eng->ctx);
    }
    return; /* EAGAIN, or anything else: back to epoll */
  }
}

static int connect_outcome(int err) {
  if (err == ECONNREFUSED) return FE_CONNECT_REFUSED;
  if (err == ETIMEDOUT) return FE_CONNECT_TIMEOUT;
  return FE_CONNECT_UNREACHABLE;
}

/* The attempt failed: drop the upstream socket, give the client fd back, report, free the pair. */
static void connect_failed(loop *l, pair *p, int err) {
  side *u = &p->s[1];
  if (u->registered) epoll_ctl(l->ep, EPOLL_CTL_DEL, u->fd, NULL);
  u->registered = false;
  if (u->fd >= 0) close(u->fd);
  u->fd = -1;
  for (int i = 0; i < 2; i++) {
    buf_put(l, p->d[i].b);
    p->d[i].b = NULL;
  }
  p->closed = true; /* skipped by the rest of this epoll batch; freed at its end */
  unlink_pair(l, p);
  p->prev = NULL;
  p->next = l->dead;
  l->dead = p;
  fe_result r = {.id = p->id, .bytes_in = (uint64_t)err, .bytes_out = 0, .outcome = connect_outcome(err)};
  l->eng->cb(&r, l->eng->ctx);
  atomic_fetch_sub_explicit(&l->eng->pairs, 1, memory_order_release); /* after the report, as close_pair */
}

/* Connected: report it, then forward exactly as a pair added by fe_add. */
static void connected(loop *l, pair *p, uint64_t now) {
  p->connecting = false;
  p->connect_deadline_ms = 0;
  p->idle_ms = p->idle_after_connect;
  p->last_ms = now;
  fe_result r = {.id = p->id, .bytes_in = 0, .bytes_out = 0, .outcome = FE_CONNECTED};
  l->eng->cb(&r, l->eng->ctx);
  if (p->idle_ms > 0 && (l->min_idle_ms == 0 || p->idle_ms < l->min_idle_ms)) {
    l->min_idle_ms = p->idle_ms;
    l->next_scan_ms = 0;
  }
  if (l->inline_loop && l->off_connected && l->eng->nloops > 1) {
    /* The pairs it connects are forwarded by this loop and its offload loops in turn (the accepts,
       decisions and connects stay here). One moves at the end of this turn (hand_off), where
       commands meet it as they meet any moved pair; its upstream leaves the epoll set then. */
    unsigned k = l->conn_turn++ % (unsigned)l->eng->nloops;
    if (k != 0) {
      p->hand_off = true;
      p->hand_to = (uint8_t)k;
      l->hand_offs++;
      return;
    }
  }
  start_forwarding(l, p, now);
}

static void connect_event(loop *l, pair *p, uint32_t ev, uint64_t now) {
  /* Writable with no error or hang-up: connected (a failed connect always sets EPOLLERR), and the
     SO_ERROR read can be saved, as HAProxy does. */
  /* The upstream spoke (or closed) at once: edge-triggered, this is the only report of it. */
  if (ev & EPOLLRDHUP) p->s[1].rdhup = true;
  if (ev & (EPOLLIN | EPOLLRDHUP)) p->s[1].rd_ready = true;
  if ((ev & (EPOLLERR | EPOLLHUP)) == 0 && (ev & EPOLLOUT) != 0) return connected(l, p, now);
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(p->s[1].fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err == 0) return connected(l, p, now);
  if (err == EINPROGRESS || err == EALREADY || err == EINTR) return; /* not settled yet */
  connect_failed(l, p, err);
}

static void start_connect(loop *l, connect_cmd *cc, uint64_t now) {
  pair *p = cc->c.p;
  link_pair(l, p); /* in the pairs list at once: close by id, drain and stop find it */
  p->last_ms = now;
  int fd = socket(cc->peer.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return connect_failed(l, p, errno);
  p->s[1].fd = fd;
  /* As the JS path's upstream sockets: no Nagle, keepalive after 60 s idle. */
  int one = 1, idle = 60;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  int rc;
  do rc = connect(fd, (struct sockaddr *)&cc->peer, cc->len);
  while (rc < 0 && errno == EINTR);
  if (rc == 0) return connected(l, p, now);
  if (errno != EINPROGRESS) return connect_failed(l, p, errno);
  /* Registered for good (see ensure_registered): the connect's EPOLLOUT edge, then forwarding. */
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = tag(p, 1)};
  if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0) return connect_failed(l, p, errno);
  p->s[1].registered = true;
  if (cc->timeout_ms > 0) {
    p->connect_deadline_ms = now + cc->timeout_ms;
    if (l->next_connect_ms == 0 || p->connect_deadline_ms < l->next_connect_ms) l->next_connect_ms = p->connect_deadline_ms;
  }
}

/* A wait ended: s[0] leaves the epoll set (it stays open: the caller reads it, then connects or
   closes it), the report gives it back, and the pair is freed at the end of the batch. */
static void wait_done(loop *l, pair *p, int outcome) {
  side *c = &p->s[0];
  if (c->registered) epoll_ctl(l->ep, EPOLL_CTL_DEL, c->fd, NULL);
  c->registered = false;
  p->closed = true;
  unlink_pair(l, p);
  p->prev = NULL;
  p->next = l->dead;
  l->dead = p;
  fe_result r = {.id = p->id, .bytes_in = 0, .bytes_out = 0, .outcome = outcome};
  l->eng->cb(&r, l->eng->ctx);
  atomic_fetch_sub_explicit(&l->eng->pairs, 1, memory_order_release); /* after the report, as close_pair */
}

static void start_wait(loop *l, connect_cmd *cc, uint64_t now) {
  pair *p = cc->c.p;
  link_pair(l, p);
  p->last_ms = now;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag(p, 0)};
  /* Cannot fail for an open socket short of ENOMEM: then the wait ends at once and the
     caller's read finds what there is (EAGAIN: it waits again). */
  if (epoll_ctl(l->ep, EPOLL_CTL_ADD, p->s[0].fd, &ev) != 0) return wait_done(l, p, FE_READABLE);
  p->s[0].registered = true;
  if (cc->timeout_ms > 0) {
    p->connect_deadline_ms = now + cc->timeout_ms;
    if (l->next_connect_ms == 0 || p->connect_deadline_ms < l->next_connect_ms) l->next_connect_ms = p->connect_deadline_ms;
  }
}

static void run_native_command(loop *l, cmd *c, uint64_t now) {
  switch (c->type) {
    case CMD_CONNECT:
      start_connect(l, (connect_cmd *)c, now);
      break;
    case CMD_WAIT:
      start_wait(l, (connect_cmd *)c, now);
      break;
    case CMD_LISTEN: {
      listen_cmd *lc = (listen_cmd *)c;
      lsn *ls = lc->ls;
      lc->ls = NULL;
      ls->next = l->lsns;
      l->lsns = ls;
      if (!arm_listener(l, ls)) { /* cannot happen for a valid socket; retry rather than lose it */
        ls->retry_ms = now + ACCEPT_RETRY_MS;
        if (l->next_retry_ms == 0 || ls->retry_ms < l->next_retry_ms) l->next_retry_ms = ls->retry_ms;
      }
      break;
    }
    case CMD_UNLISTEN:
      for (lsn **pp = &l->lsns; *pp != NULL; pp = &(*pp)->next) {
        lsn *ls = *pp;
        if (ls->lid != (uint32_t)c->arg) continue;
        *pp = ls->next;
        if (ls->registered) epoll_ctl(l->ep, EPOLL_CTL_DEL, ls->fd, NULL);
        ls->registered = false;
        close(ls->fd); /* the kernel resets what waits in its accept queue, as server.close() */
        ls->fd = -1;
        /* An event for it may follow in this same epoll batch (the shutdown in fe_unlisten makes
           one likely; ASan caught the use after free): freed once the batch is done. */
        ls->closed = true;
        ls->next = l->dead_lsns;
        l->dead_lsns = ls;
        break;
      }
      {
        /* Every accept on it was reported before this (same thread, in order). */
        fe_result r = {.id = c->arg, .bytes_in = 0, .bytes_out = 0, .outcome = FE_UNLISTENED};
        l->eng->cb(&r, l->eng->ctx);
      }
      break;
  }
}

/* Connect deadlines and paused listeners. A scan over the pairs only when the earliest deadline
   seen passes: connects that succeed in time cost nothing here. */
static void run_native_timers(loop *l, uint64_t now) {
  free_dead_lsns(l); /* after the batch: no event of it can name them any more */
  if (l->next_retry_ms != 0 && now >= l->next_retry_ms) {
    l->next_retry_ms = 0;
    for (lsn *ls = l->lsns; ls != NULL; ls = ls->next) {
      if (ls->retry_ms == 0) continue;
      if (now >= ls->retry_ms && arm_listener(l, ls)) ls->retry_ms = 0;
      else if (now >= ls->retry_ms) ls->retry_ms = now + ACCEPT_RETRY_MS;
      if (ls->retry_ms != 0 && (l->next_retry_ms == 0 || ls->retry_ms < l->next_retry_ms)) l->next_retry_ms = ls->retry_ms;
    }
  }
  if (l->next_connect_ms == 0 || now < l->next_connect_ms) return;
  uint64_t next = 0;
  for (pair *p = l->pairs, *nx; p != NULL; p = nx) {
    nx = p->next;
    if (!p->connecting || p->connect_deadline_ms == 0) continue;
    if (now >= p->connect_deadline_ms) {
      if (p->waiting) wait_done(l, p, FE_READ_TIMEOUT);
      else connect_failed(l, p, ETIMEDOUT);
      continue;
    }
    if (next == 0 || p->connect_deadline_ms < next) next = p->connect_deadline_ms;
  }
  l->next_connect_ms = next;
}

void fe_set_batch_end_cb(fe_engine *e, fe_batch_end_cb cb, void *ctx) {
  e->batch_end_ctx = ctx;
  atomic_store_explicit(&e->batch_end_cb, cb, memory_order_release);
}

void fe_set_accept_cb(fe_engine *e, fe_accept_cb cb, void *ctx) {
  e->accept_cb = cb;
  e->accept_ctx = ctx;
}

int fe_listen(fe_engine *e, uint32_t lid, int fd) {
  lsn *ls = calloc(1, sizeof *ls);
  listen_cmd *lc = calloc(1, sizeof *lc);
  if (ls == NULL || lc == NULL || e->accept_cb == NULL) {
    free(ls);
    free(lc);
    close(fd);
    return e->accept_cb == NULL ? -EINVAL : -ENOMEM;
  }
  ls->lid = lid;
  ls->fd = fd;
  lc->c.type = CMD_LISTEN;
  lc->ls = ls;
  push_cmd(listen_loop(e, lid), &lc->c);
  return 0;
}

void fe_unlisten(fe_engine *e, uint32_t lid, int fd) {
  /* Stop listening now, on the caller's thread: shutdown() takes the socket out of the port's
     SO_REUSEPORT group and resets (or, with tcp_migrate_req, migrates) its queue exactly as close()
     does, while the fd stays valid for the loop thread, which may be in accept4() on it (it then
     gets EINVAL). The loop closes it when CMD_UNLISTEN arrives. */
  if (fd >= 0) shutdown(fd, SHUT_RDWR);
  cmd *c = calloc(1, sizeof *c);
  if (c == NULL) return;
  c->type = CMD_UNLISTEN;
  c->arg = lid;
  push_cmd(listen_loop(e, lid), c);
}

int fe_connect(fe_engine *e, uint64_t id, int fd_client, const struct sockaddr *peer, socklen_t len,
               uint32_t timeout_ms, uint32_t idle_ms, const void *pre_up, size_t pre_up_len) {
  if (len > sizeof(struct sockaddr_storage) || pre_up_len > UINT32_MAX || peer == NULL) return -EINVAL;
  pair *p = calloc(1, sizeof *p);
  connect_cmd *cc = calloc(1, sizeof *cc);
  buf *up = copy_buf(e, pre_up, pre_up_len);
  if (p == NULL || cc == NULL || (pre_up_len > 0 && up == NULL)) {
    free(p);
    free(cc);
    if (up != NULL) atomic_fetch_sub_explicit(&e->bufs_in_use, 1, memory_order_relaxed);
    free(up);
    return -ENOMEM;
  }
  p->id = id;
  p->connecting = true;
  p->own_fds = true;
  p->idle_after_connect = idle_ms;
  p->s[0].fd = fd_client;
  p->s[1].fd = -1;
  p->d[0] = (dirn){.b = up, .start = 0, .end = (uint32_t)pre_up_len};
  memcpy(&cc->peer, peer, len);
  cc->len = len;
  cc->timeout_ms = timeout_ms;
  cc->c.type = CMD_CONNECT;
  cc->c.p = p;
  atomic_fetch_add_explicit(&e->pairs, 1, memory_order_relaxed);
  push_cmd(pick_loop(e), &cc->c);
  return 0;
}

int fe_wait_readable(fe_engine *e, uint64_t id, int fd_client, uint32_t timeout_ms) {
  pair *p = calloc(1, sizeof *p);
  connect_cmd *cc = calloc(1, sizeof *cc);
  if (p == NULL || cc == NULL) {
    free(p);
    free(cc);
    return -ENOMEM;
  }
  p->id = id;
  p->connecting = true; /* not forwarding: no offload, no detach, no idle timeout */
  p->waiting = true;
  p->own_fds = true;
  p->s[0].fd = fd_client;
  p->s[1].fd = -1;
  cc->timeout_ms = timeout_ms;
  cc->c.type = CMD_WAIT;
  cc->c.p = p;
  atomic_fetch_add_explicit(&e->pairs, 1, memory_order_relaxed);
  push_cmd(pick_loop(e), &cc->c);
  return 0;
}

/* ---- io_uring forwarding (ring mode) ----
 *
 * A loop thread (not the inline loop, whose epoll fd Node's libuv watches) forwards its pairs
 * through an io_uring of its own when the kernel gives it one: each direction of a pair has one
 * operation in flight at a time, a recv from its side, then a send of what it got to the other
 * side, then the next recv. Keep-alive CPU per request, in alternating runs of a throw-away
 * forwarder against HAProxy and the epoll version on this machine: io_uring 8.3-10.2 µs, epoll
 * 12.5-14.6, HAProxy 13.7-17.2. Per exchange there is no recv or send syscall and no epoll_wait:
 * one io_uring_enter serves a whole batch (0.29 syscalls per request against 4.2), and
 * DEFER_TASKRUN runs the socket work in this thread when it asks for completions.
 *
 * Ownership: the ring, its provided buffers and every ring pair belong to the loop thread (the
 * ring is created there: SINGLE_ISSUER). The epoll set stays for what is not forwarding (the
 * command eventfd, native listeners, connects and waits); a multishot poll on the epoll fd tells
 * the ring when to look into it.
 *
 * Invariants:
 *   - A recv is armed only while d[i] is empty and side i has not sent its FIN; a send only while
 *     d[i] holds bytes. So a direction has at most one op in flight, and an idle pair has no
 *     buffer: its recvs pick one from the provided ring (group 0) only when bytes arrive. With
 *     none left (ENOBUFS: every one waits for a slow reader), that recv is made again into a
 *     buffer of the pool, so a slow reader costs its own connection only.
 *   - Every op is counted in `inflight`. A closed pair cancels its ops (by user_data), closes its
 *     fds (the ops hold the sockets open until they end: a RST set by SO_LINGER goes out then) and
 *     is freed by the last completion, which also gives back the buffers the ops used.
 *   - Every SQE naming a pair's fd is submitted before that fd is closed: the fd number may be
 *     reused at once by another thread.
 *   - A detach cancels the pair's ops and answers when the last one ended, with whatever they
 *     read meanwhile; a FIN read then makes it a half-closed answer, and forwarding goes on.
 */
#ifdef FE_URING

#define RING_ENTRIES 1024
#define RING_CQ_ENTRIES 16384
#define RING_BUFS 128 /* provided buffers of BUF_SIZE per loop: 8 MiB of address space, touched as used */
#define RING_BUFS_MAX 32768
#define UD_IGNORE 0   /* cancels */
#define UD_EPOLL 1    /* the multishot poll on the loop's epoll fd */
#define OP_SEND 2     /* user_data: the pair | side the bytes came from (bit 0) | OP_SEND */

static void ring_buf_return(loop *l, uint32_t bid) {
  io_uring_buf_ring_add(l->br, l->br_mem + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
                        io_uring_buf_ring_mask(l->br_n), 0);
  io_uring_buf_ring_advance(l->br, 1);
  atomic_fetch_sub_explicit(&l->eng->bufs_in_use, 1, memory_order_relaxed);
}

/* An SQE, submitting what is queued when the ring is full. NULL only if the kernel takes none. */
static struct io_uring_sqe *ring_sqe(loop *l) {
  struct io_uring_sqe *q = io_uring_get_sqe(&l->ring);
  if (q == NULL) {
    io_uring_submit(&l->ring);
    q = io_uring_get_sqe(&l->ring);
  }
  return q;
}

static bool ring_recv(loop *l, pair *p, int from) {
  struct io_uring_sqe *q = ring_sqe(l);
  if (q == NULL) {
    fail(l, p, from);
    return false;
  }
  io_uring_prep_recv(q, p->s[from].fd, NULL, BUF_SIZE, 0);
  q->flags |= IOSQE_BUFFER_SELECT;
  q->buf_group = 0;
  io_uring_sqe_set_data64(q, (uint64_t)(uintptr_t)p | (uint64_t)from);
  p->rx[from] = true;
  p->inflight++;
  return true;
}

/* No provided buffer left: the same recv into a buffer of the pool (d[from].b, empty until done). */
static bool ring_recv_own(loop *l, pair *p, int from) {
  buf *b = buf_get(l);
  struct io_uring_sqe *q = b != NULL ? ring_sqe(l) : NULL;
  if (q == NULL) {
    buf_put(l, b);
    fail(l, p, from);
    return false;
  }
  p->d[from] = (dirn){.b = b, .start = 0, .end = 0};
  io_uring_prep_recv(q, p->s[from].fd, b->data, b->cap, 0);
  io_uring_sqe_set_data64(q, (uint64_t)(uintptr_t)p | (uint64_t)from);
  p->rx[from] = true;
  p->inflight++;
  return true;
}

static bool ring_send(loop *l, pair *p, int from) {
  dirn *d = &p->d[from];
  struct io_uring_sqe *q = ring_sqe(l);
  if (q == NULL) {
    fail(l, p, 1 - from);
    return false;
  }
  io_uring_prep_send(q, p->s[1 - from].fd, dir_data(l, p, from), d->end - d->start, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(q, (uint64_t)(uintptr_t)p | (uint64_t)from | OP_SEND);
  p->tx[from] = true;
  p->inflight++;
  return true;
}

/* Whatever each direction needs next: send what waits, pass a FIN on, or read. Returns false if
   the pair closed. */
static bool ring_kick(loop *l, pair *p) {
  for (int from = 0; from < 2; from++) {
    if (p->closed) return false;
    int to = 1 - from;
    if (p->rx[from] || p->tx[from]) continue;
    if (p->d[from].end > p->d[from].start) {
      if (!ring_send(l, p, from)) return false;
      continue;
    }
    release_dir(l, p, from);
    if (!p->s[from].rd_eof) {
      if (!ring_recv(l, p, from)) return false;
      continue;
    }
    if (!p->s[to].wr_shut) { /* as flush(): the last FIN of the pair goes out with close() */
      p->s[to].wr_shut = true;
      if (!(p->s[to].rd_eof && p->s[from].wr_shut)) shutdown(p->s[to].fd, SHUT_WR);
    }
  }
  if (p->s[0].rd_eof && p->s[1].rd_eof && p->s[0].wr_shut && p->s[1].wr_shut) {
    close_pair(l, p, FE_OK, -1);
    return false;
  }
  return true;
}

static void ring_start(loop *l, pair *p, uint64_t now) {
  /* Out of the epoll set (a connect watched s[1] there): from here only the ring hears of it. */
  for (int i = 0; i < 2; i++) {
    if (p->s[i].registered) epoll_ctl(l->ep, EPOLL_CTL_DEL, p->s[i].fd, NULL);
    p->s[i].registered = false;
  }
  p->ring = true;
  p->last_ms = now;
  ring_kick(l, p);
}

static void ring_free(loop *l, pair *p) {
  for (int i = 0; i < 2; i++) release_dir(l, p, i);
  p->next = l->dead;
  l->dead = p;
}

/* From close_pair: the ops are cancelled, the fds closed; freed now, or by the last completion. */
static void ring_close(loop *l, pair *p, int reset_side) {
  for (int i = 0; i < 2; i++) {
    uint64_t ud = (uint64_t)(uintptr_t)p | (uint64_t)i;
    if (p->rx[i] || p->tx[i]) {
      struct io_uring_sqe *q = ring_sqe(l);
      if (q != NULL) {
        io_uring_prep_cancel64(q, p->tx[i] ? ud | OP_SEND : ud, 0);
        io_uring_sqe_set_data64(q, UD_IGNORE);
      } else {
        /* No SQE for the cancel: the op ends anyway once its socket is shut down. */
        shutdown(p->s[p->tx[i] ? 1 - i : i].fd, SHUT_RDWR);
      }
    }
  }
  io_uring_submit(&l->ring); /* every SQE naming these fds, before they are closed */
  for (int i = 0; i < 2; i++) {
    side *s = &p->s[i];
    if (i == reset_side || reset_side == RESET_BOTH) {
      struct linger lg = {.l_onoff = 1, .l_linger = 0};
      setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(s->fd);
    s->fd = -1;
  }
  if (p->detach != NULL) { /* it ended before the detach could: "gone", unless another loop had it */
    detach_count_off(p->detach);
    p->detach = NULL;
  }
  if (p->inflight > 0) {
    p->zombie = true;
    l->zombies++;
  } else {
    for (int i = 0; i < 2; i++) release_dir(l, p, i);
  }
}

/* A detach of a ring pair: false if it can be answered now (nothing in flight). */
static bool ring_detach(loop *l, pair *p, detach_req *r) {
  if (p->inflight == 0) return false;
  p->detach = r;
  for (int i = 0; i < 2; i++) {
    uint64_t ud = (uint64_t)(uintptr_t)p | (uint64_t)i;
    if (!p->rx[i] && !p->tx[i]) continue;
    struct io_uring_sqe *q = ring_sqe(l);
    if (q == NULL) continue; /* that op ends by itself (a send soon; a recv when bytes come) */
    io_uring_prep_cancel64(q, p->tx[i] ? ud | OP_SEND : ud, 0);
    io_uring_sqe_set_data64(q, UD_IGNORE);
  }
  return true;
}

static void ring_complete(loop *l, uint64_t ud, int res, uint32_t flags, uint64_t now) {
  pair *p = (pair *)(uintptr_t)(ud & ~(uint64_t)3);
  int from = (int)(ud & 1), to = 1 - from;
  dirn *d = &p->d[from];
  p->inflight--;
  if (ud & OP_SEND) {
    p->tx[from] = false;
    if (res > 0) {
      d->start += (uint32_t)res;
      p->wr[to] += (uint64_t)res;
      p->last_ms = now;
    }
    if (!p->closed && res < 0 && res != -ECANCELED && res != -EINTR && res != -EAGAIN) fail(l, p, to);
  } else {
    p->rx[from] = false;
    if (flags & IORING_CQE_F_BUFFER) {
      uint32_t bid = flags >> IORING_CQE_BUFFER_SHIFT;
      atomic_fetch_add_explicit(&l->eng->bufs_in_use, 1, memory_order_relaxed);
      if (res > 0) {
        p->rbuf[from] = bid + 1;
        *d = (dirn){.b = NULL, .start = 0, .end = (uint32_t)res};
      } else {
        ring_buf_return(l, bid);
      }
    } else if (res > 0 && d->b != NULL) { /* ring_recv_own */
      d->end = (uint32_t)res;
    }
    if (res > 0) {
      p->rd[from] += (uint64_t)res;
      p->last_ms = now;
    } else if (!p->closed && res == 0) {
      p->s[from].rd_eof = true;
    } else if (!p->closed && res == -ENOBUFS && p->detach == NULL) {
      ring_recv_own(l, p, from);
    } else if (!p->closed && res < 0 && res != -ECANCELED && res != -EINTR && res != -EAGAIN && res != -ENOBUFS) {
      fail(l, p, from);
    }
  }
  if (p->closed) {
    if (p->inflight == 0 && p->zombie) {
      p->zombie = false;
      l->zombies--;
      ring_free(l, p);
    }
    return;
  }
  if (p->detach != NULL) {
    detach_req *r = p->detach;
    if (p->s[0].rd_eof || p->s[1].rd_eof) { /* a FIN came in meanwhile: not a clean point */
      p->detach = NULL;
      detach_half_closed(p, r);
    } else {
      if (p->inflight > 0) return;
      p->detach = NULL;
      return detach_answer(l, p, r);
    }
  }
  ring_kick(l, p);
}

static void arm_epoll_poll(loop *l) {
  struct io_uring_sqe *q = ring_sqe(l);
  if (q == NULL) return; /* tried again next turn */
  io_uring_prep_poll_multishot(q, l->ep, POLLIN);
  io_uring_sqe_set_data64(q, UD_EPOLL);
  l->ep_armed = true;
}

/* Submits what is queued, waits up to `timeout` ms (-1: no limit) for a completion, and handles
   every completion there is. Returns whether the epoll set has news. */
static bool ring_reap(loop *l, int timeout) {
  struct io_uring_cqe *cqe = NULL;
  if (timeout < 0) {
    io_uring_submit_and_wait(&l->ring, 1);
  } else {
    struct __kernel_timespec ts = {.tv_sec = timeout / 1000, .tv_nsec = (long long)(timeout % 1000) * 1000000};
    io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
  }
  uint64_t now = now_ms();
  bool look = false;
  for (;;) {
    struct io_uring_cqe *batch[64];
    struct { uint64_t ud; int res; uint32_t flags; } got[64];
    unsigned n = io_uring_peek_batch_cqe(&l->ring, batch, 64);
    if (n == 0) break;
    for (unsigned k = 0; k < n; k++) got[k].ud = batch[k]->user_data, got[k].res = batch[k]->res, got[k].flags = batch[k]->flags;
    io_uring_cq_advance(&l->ring, n); /* copied out: completions may post more while we handle these */
    for (unsigned k = 0; k < n; k++) {
      if (got[k].ud == UD_IGNORE) continue;
      if (got[k].ud == UD_EPOLL) {
        look = true;
        if (!(got[k].flags & IORING_CQE_F_MORE)) l->ep_armed = false;
        continue;
      }
      ring_complete(l, got[k].ud, got[k].res, got[k].flags, now);
    }
    if (n < 64) break;
  }
  return look;
}

/* One batch of completions, a look into the epoll set when the ring says it has news, then what
   every turn ends with. */
static void ring_turn(loop *l, int timeout) {
  if (!l->ep_armed) arm_epoll_poll(l);
  bool look = ring_reap(l, l->ep_again ? 0 : timeout) || l->ep_again;
  /* A listener or a wait is level-triggered: what one look left is found by the next. */
  if (look) l->ep_again = epoll_batch(l, 0) > 0;
  end_turn(l);
}

static bool ring_setup(loop *l) {
  const char *env = getenv("FPROXY_ENGINE_URING");
  if (l->inline_loop || (env != NULL && strcmp(env, "0") == 0)) return false;
  /* FPROXY_ENGINE_RING_BUFS (a power of 2): tests and the stress use 1 or 2, so that recvs run out
     of provided buffers and take the pool's. */
  const char *nb = getenv("FPROXY_ENGINE_RING_BUFS");
  l->br_n = RING_BUFS;
  if (nb != NULL) {
    unsigned long v = strtoul(nb, NULL, 10);
    if (v >= 1 && v <= RING_BUFS_MAX && (v & (v - 1)) == 0) l->br_n = (uint32_t)v;
  }
  struct io_uring_params pr = {0};
  pr.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
  pr.cq_entries = RING_CQ_ENTRIES;
  if (io_uring_queue_init_params(RING_ENTRIES, &l->ring, &pr) != 0) return false; /* no io_uring here: epoll */
  /* The ring of buffer addresses: at least a page (the kernel maps it whole). */
  size_t ring_bytes = l->br_n * sizeof(struct io_uring_buf);
  if (ring_bytes < 4096) ring_bytes = 4096;
  l->br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  l->br_mem = mmap(NULL, (size_t)l->br_n * BUF_SIZE, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE | MAP_NORESERVE, -1, 0);
  struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)l->br, .ring_entries = l->br_n, .bgid = 0};
  if (l->br == MAP_FAILED || l->br_mem == MAP_FAILED || io_uring_register_buf_ring(&l->ring, &reg, 0) != 0) {
    if (l->br != MAP_FAILED) munmap(l->br, ring_bytes);
    if (l->br_mem != MAP_FAILED) munmap(l->br_mem, (size_t)l->br_n * BUF_SIZE);
    l->br = NULL;
    l->br_mem = NULL;
    io_uring_queue_exit(&l->ring);
    return false;
  }
  io_uring_buf_ring_init(l->br);
  for (unsigned i = 0; i < l->br_n; i++)
    io_uring_buf_ring_add(l->br, l->br_mem + (size_t)i * BUF_SIZE, BUF_SIZE, (unsigned short)i, io_uring_buf_ring_mask(l->br_n), (int)i);
  io_uring_buf_ring_advance(l->br, (int)l->br_n);
  l->ring_on = true;
  atomic_fetch_add_explicit(&l->eng->ring_loops, 1, memory_order_relaxed);
  return true;
}

/* After loop_close_all: the cancelled ops end (normally within the first wait), then the ring
   goes. A pair whose op never ended is left allocated, with the buffer memory, rather than freed
   under the kernel. */
static void ring_teardown(loop *l) {
  for (int k = 0; k < 200 && l->zombies > 0; k++) ring_reap(l, 10);
  free_dead(l);
  io_uring_queue_exit(&l->ring);
  size_t ring_bytes = l->br_n * sizeof(struct io_uring_buf);
  munmap(l->br, ring_bytes < 4096 ? 4096 : ring_bytes);
  if (l->zombies == 0) munmap(l->br_mem, (size_t)l->br_n * BUF_SIZE);
}

#endif /* FE_URING */
