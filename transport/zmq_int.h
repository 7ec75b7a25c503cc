/*
 * transport/zmq_int.h - private header of the ZeroMQ engine: the engine,
 * link, session and peer structs and the helpers its files share.  Only
 * the zmq*.c files include it; the rest of shoal uses transport.h.
 *
 * Files (the design is at the top of zmq.c):
 *   zmq.c         helpers, the command queue, the loop, the public calls
 *   zmq_peers.c   allow and deny lists, peer records
 *   zmq_sock.c    sockets and links, sessions on them, monitors, ZAP
 *   zmq_frames.c  reading sockets: routing frames to sessions
 */
#ifndef SHOAL_TRANSPORT_ZMQ_INT_H
#define SHOAL_TRANSPORT_ZMQ_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zmq.h>

#include "transport.h"

#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93 /* a draft option in libzmq 4.3 */
#endif

/* An X25519 key, as CURVE uses (crypto_sign_ed25519_pk_to_curve25519 of an
 * Ed25519 key).  A listener's ident and an unknown peer's record hold one
 * where they would hold an Ed25519 key, hence the assertion. */
enum {
    XKEY_BYTES = 32
};
_Static_assert((int)XKEY_BYTES == (int)SHOAL_KEY_BYTES,
               "an X25519 key fits where an Ed25519 key goes");

enum {
    RECV_BURST = 64,        /* messages read from one socket per wake-up */
    SNDHWM = 64,            /* our own frames are bounded by the window */
    RCVHWM = 4,             /* frames of up to SHOAL__MAX_FRAME bytes queued per peer
                                 (a full pipe stops reading the TCP socket: nothing is lost) */
    MAX_RSESS = 4096,       /* sessions per listening socket */
    MAX_KEY_SESS = 8,       /* sessions per peer key on one listening socket */
    MAX_UNKNOWN_PEERS = 64, /* peer records for refused, unknown keys */
    DEAD_RIDS = 64,         /* routing ids of failed sessions we ignore */
    RETRY_MS = 20,          /* retry of a frame a ROUTER could not take */
    SAVE_MS = 5000,         /* periodic save of changed peer state */
    URGENT_SAVE_MS = 1000,  /* a peer's urgent saves: at most one per interval */
    BACKOFF_MIN_MS = 500,
    BACKOFF_MAX_MS = 30000,
    RECONNECT_IVL_MS = 100,
    RECONNECT_IVL_MAX_MS = 5000,
    HANDSHAKE_IVL_MS = 10000,
    HELLO_TIMEOUT_BEATS = 10 /* heartbeats before an incoming link that never said HELLO goes */
};

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_DOMAIN   "shoal"

enum {
    L_LISTEN = 1,
    L_CONNECT = 2,
    L_SYNC = 3
};
enum {
    C_LISTEN = 1,
    C_CONNECT,
    C_DISCONNECT,
    C_SYNC,
    C_DISALLOW,
    C_RECHECK
};

typedef struct cmd {
    int op;
    const char *ep; /* Borrowed from the API thread */
    uint8_t key[SHOAL_KEY_BYTES];
    int timeout_ms;
    char *bound; /* out (listen): owned by the API thread once done */
    int rc;
    bool done;
    struct cmd *next;
} cmd;

typedef struct sess {
    shoal__session *s; /* owned */
    bool key_known;
    uint8_t key[SHOAL_KEY_BYTES]; /* the peer's Ed25519 key */
    bool check_x;                 /* allow_any: HELLO's key must convert to x */
    uint8_t x[XKEY_BYTES];
    uint8_t rid[256]; /* ROUTER: routing id */
    size_t ridlen;
    int fd;                    /* ROUTER: ZMQ_SRCFD of its messages */
    shoal__session_stats last; /* stats already folded into the peer */
    bool live_counted;         /* counted in the peer's live links */
    uint8_t *pend;             /* a frame the socket refused for now, owned */
    size_t pendlen;
    uint64_t born; /* monotonic ms */
    bool dead;
    struct sess *next;
} sess;

/* The authenticated identity of a message on a listener, from the User-Id
 * the ZAP handler gave its connection: an allowed Ed25519 key, or (allow
 * any) the X25519 key of a client not on the list. */
typedef struct ident {
    bool xonly;
    uint8_t key[SHOAL_KEY_BYTES];
} ident;

/* A routing id whose frames we ignore, for one identity and connection. */
typedef struct dead_rid {
    uint8_t rid[256];
    size_t len;
    ident id;
    int fd;
} dead_rid;

typedef struct lnk {
    int kind;
    void *sock, *mon;
    char ep[256];                 /* the endpoint connected to, or bound */
    uint8_t key[SHOAL_KEY_BYTES]; /* DEALER: the peer's Ed25519 key */
    sess *ss;                     /* sessions (a DEALER has at most one) */
    size_t nss;
    dead_rid buried[DEAD_RIDS];
    size_t dead_next;
    uint64_t retry_at; /* DEALER without socket: when to open one */
    uint64_t backoff;
    cmd *sync; /* L_SYNC: the waiting command */
    uint64_t deadline;
    bool reached; /* a handshake ever succeeded */
    bool dead;
    struct lnk *next;
} lnk;

typedef struct peer {
    shoal__peer_info info;
    int live;          /* sessions up now */
    bool unknown;      /* refused, key is X25519 */
    bool refused_only; /* never completed a handshake (in any run) */
    bool dirty, urgent;
    uint64_t urgent_at; /* monotonic ms: its next urgent save, not before */
    uint64_t touched;   /* e->tick at its last activity (least recently seen goes first) */
} peer;

/* A peer record evicted (its stored record is to be forgotten). */
typedef struct gone {
    uint8_t key[SHOAL_KEY_BYTES];
} gone;

typedef struct allowed {
    uint8_t x[XKEY_BYTES];
    uint8_t ed[SHOAL_KEY_BYTES];
} allowed;

struct shoal__engine {
    shoal__engine_cfg cfg; /* the pointers in it are Borrowed */
    shoal__host host;
    uint8_t pk[SHOAL_KEY_BYTES];
    uint8_t xpk[XKEY_BYTES];
    uint8_t *xsk; /* 32 bytes, sodium_malloc'd, owned */
    pthread_t th;
    bool th_started;
    int wake[2];
    atomic_bool notified;
    uint64_t frames_out; /* frames the sessions produced (engine thread) */

    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t cv;
    cmd *q_head, *q_tail;
    bool stopping, stopped;
    allowed *allow;
    size_t nallow, capallow;
    /* Keys the host certified when they connected (shoal__host.certified):
     * admitted like listed ones for the engine's life, unless disallowed. */
    allowed *certok;
    size_t ncertok, capcertok;
    uint64_t cert_check_at; /* monotonic ms of the next look at certok (zmq.c recheck_certs) */
    uint64_t auth_seen;     /* host.auth_gen at that look */
    allowed *deny;          /* disallowed keys: refused even under allow_any */
    size_t ndeny, capdeny;
    bool allow_any;
    peer *peers;
    size_t npeers, cappeers, nunknown;
    size_t maxpeers; /* cap on npeers */
    uint64_t tick;   /* logical clock of peer activity */
    gone *gone;      /* evicted records not yet forgotten */
    size_t ngone, capgone;

    /* Engine thread only. */
    void *ctx;
    void *zap;
    lnk *links;
    unsigned mon_seq;
    uint64_t next_save;
    uint64_t next_log_poll; /* when to look at the log for others' commits */
    bool relay;             /* a link applied changes: make the others push */
};

/* ---------------------------------------------------- shared helpers */

uint64_t shoal__zq_mono_ms(void);
uint64_t shoal__zq_wall_ms(shoal__engine *e);
void shoal__zq_logf(shoal__engine *e, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void shoal__zq_keyhex(char out[17], const uint8_t *k);
int shoal__zq_zmq_err(void);
const allowed *shoal__zq_alist_find_x(const allowed *v, size_t n, const uint8_t x[XKEY_BYTES]);
const allowed *shoal__zq_alist_find(const allowed *v, size_t n, const uint8_t ed[SHOAL_KEY_BYTES]);
int shoal__zq_alist_add(allowed **v, size_t *n, size_t *cap, const allowed *a);
void shoal__zq_alist_del(allowed *v, size_t *n, const uint8_t ed[SHOAL_KEY_BYTES]);
bool shoal__zq_ident_permitted(const shoal__engine *e, const ident *id);
peer *shoal__zq_peer_find(shoal__engine *e, const uint8_t key[SHOAL_KEY_BYTES], bool unknown,
                          bool create);
void shoal__zq_peer_error(peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void shoal__zq_peer_note(shoal__engine *e, const uint8_t key[SHOAL_KEY_BYTES], const char *what);
void shoal__zq_save_peers(shoal__engine *e, bool all);
void shoal__zq_sess_fold(shoal__engine *e, lnk *l, sess *s, shoal__session_stats *out);
int shoal__zq_set_int(void *sock, int opt, int v);
int shoal__zq_common_opts(shoal__engine *e, void *sock);
int shoal__zq_monitor(shoal__engine *e, lnk *l);
void shoal__zq_sess_drop(shoal__engine *e, lnk *l, sess *s, const char *why);
void shoal__zq_sock_close(lnk *l);
void shoal__zq_link_close(shoal__engine *e, lnk *l, const char *why);
int shoal__zq_dealer_open(shoal__engine *e, lnk *l);
int shoal__zq_send_frame(lnk *l, sess *s, const uint8_t *f, size_t n);
void shoal__zq_sess_pump(shoal__engine *e, lnk *l, sess *s);
sess *shoal__zq_sess_new(shoal__engine *e, lnk *l, const uint8_t *expect);
void shoal__zq_sync_done(shoal__engine *e, lnk *l, int rc);
void shoal__zq_dealer_reset(shoal__engine *e, lnk *l, const char *why);
void shoal__zq_read_monitor(shoal__engine *e, lnk *l);
void shoal__zq_zap_serve(shoal__engine *e);
void shoal__zq_sess_bury(lnk *l, const sess *s);
sess *shoal__zq_router_route(shoal__engine *e, lnk *l, zmq_msg_t *rid, zmq_msg_t *m,
                             bool multipart);
void shoal__zq_read_socket(shoal__engine *e, lnk *l);

#endif /* SHOAL_TRANSPORT_ZMQ_INT_H */
