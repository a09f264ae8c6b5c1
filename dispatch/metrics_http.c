/*
 * The metrics endpoint: libmicrohttpd on a thread of its own (its epoll
 * loop) serving GET /metrics (Prometheus text) and GET /actors (JSON).
 * Like the exporter it reads, it sits above the actor and network modules.
 *
 * Limits: libmicrohttpd keeps each connection's request in a 16 KiB pool
 * and answers a longer request line or header with a 4xx itself; at most
 * 256 connections at once, each closed after 10 s of silence.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "actor/metrics.h"
#include "actor/net.h"
#include "axon/config.h"
#include "axon/metrics.h"
#include "common/error.h"
#include "dispatch/net_internal.h"

#define CONN_MEMORY (16u << 10)
#define CONN_LIMIT 256u
#define CONN_TIMEOUT_S 10u

typedef struct endpoint_s {
    ax_system_t *sys;
    struct MHD_Daemon *daemon;
    unsigned top_n;
    char addr[AX_PATH_STR_MAX];
} endpoint_t;

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *type, char *body,
                             size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret;

    if (r == NULL) {
        free(body);
        return MHD_NO; /* libmicrohttpd closes the connection */
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

__attribute__((format(printf, 3, 4)))
static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned code, const char *fmt, ...)
{
    char *body = NULL;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&body, fmt, ap);
    va_end(ap);
    if (n < 0)
        return MHD_NO;
    return reply(conn, code, "text/plain; charset=utf-8", body, (size_t)n);
}

/* Run a writer into memory and send what it wrote, or a 500. */
typedef ax_status_t (*writer_t)(endpoint_t *ep, FILE *out, const void *arg);

static enum MHD_Result serve(struct MHD_Connection *conn, endpoint_t *ep, writer_t write,
                             const void *arg, const char *type)
{
    char *body = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&body, &len);
    ax_status_t st;

    if (mem == NULL)
        return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    st = write(ep, mem, arg);
    if (fclose(mem) != 0 && st == AX_OK)
        st = ax__error(AX_ENOMEM, "metrics: out of memory");
    if (st != AX_OK) {
        free(body);
        return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s: %s\n", ax_status_str(st),
                          ax_error_detail());
    }
    return reply(conn, MHD_HTTP_OK, type, body, len);
}

static ax_status_t write_metrics(endpoint_t *ep, FILE *out, const void *arg)
{
    (void)arg;
    return ax_metrics_write(ep->sys, out, AX_METRICS_PROMETHEUS);
}

typedef struct actors_query_s {
    ax_metrics_sort_t by;
    size_t limit;
} actors_query_t;

static ax_status_t write_actors(endpoint_t *ep, FILE *out, const void *arg)
{
    const actors_query_t *q = arg;

    return ax_metrics_write_actors(ep->sys, out, q->by, q->limit);
}

static enum MHD_Result serve_actors(struct MHD_Connection *conn, endpoint_t *ep)
{
    const char *sort = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "sort");
    const char *limit = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
    actors_query_t q = {AX_METRICS_BY_MAILBOX, ep->top_n};

    if (sort != NULL && strcmp(sort, "time") == 0)
        q.by = AX_METRICS_BY_TIME;
    else if (sort != NULL && strcmp(sort, "mailbox") != 0)
        return reply_text(conn, MHD_HTTP_BAD_REQUEST, "sort must be mailbox or time\n");
    if (limit != NULL) {
        char *end;
        unsigned long n;

        errno = 0;
        n = strtoul(limit, &end, 10);
        if (limit[0] < '0' || limit[0] > '9' || *end != '\0' || errno != 0 || n < 1 ||
            n > AX__METRICS_RANK_MAX)
            return reply_text(conn, MHD_HTTP_BAD_REQUEST, "limit must be an integer from 1 to %u\n",
                              AX__METRICS_RANK_MAX);
        q.limit = n;
    }
    return serve(conn, ep, write_actors, &q, "application/json");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req)
{
    endpoint_t *ep = cls;

    (void)version;
    (void)upload;
    (void)req;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
        return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET is served\n");
    if (*upload_size != 0)
        return reply_text(conn, MHD_HTTP_BAD_REQUEST, "a GET takes no body\n");
    if (strcmp(url, "/metrics") == 0)
        return serve(conn, ep, write_metrics, NULL, "text/plain; version=0.0.4; charset=utf-8");
    if (strcmp(url, "/actors") == 0)
        return serve_actors(conn, ep);
    return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found: the paths are /metrics and /actors\n");
}

static void endpoint_stop(void *ctx)
{
    endpoint_t *ep = ctx;

    MHD_stop_daemon(ep->daemon); /* joins its thread, closes the socket */
    free(ep);
}

/* A listening socket on the configured address; its bound form in ep. */
static ax_status_t listen_on(endpoint_t *ep, const char *text, int *fd_out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    ax_addr_t addr;
    int fd, one = 1;
    ax_status_t st = ax_addr_parse(text, &addr);

    if (st != AX_OK)
        return ax__error(st, "config: metrics.listen: %s", ax_error_detail());
    len = ax__sockaddr_of(&addr, &ss);
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return ax__error(AX_EIO, "metrics: socket: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 128) != 0) {
        st = ax__error(AX_EIO, "metrics: cannot listen on %s: %s", text, strerror(errno));
        close(fd);
        return st;
    }
    len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET)
            addr.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else
            addr.port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    ax_addr_format(&addr, ep->addr, sizeof ep->addr);
    *fd_out = fd;
    return AX_OK;
}

ax_status_t ax_metrics_start(ax_system_t *sys)
{
    const ax_config_t *cfg;
    endpoint_t *ep;
    ax_status_t st;
    int fd = -1;

    if (sys == NULL)
        return ax__error(AX_EINVAL, "metrics_start: NULL system");
    cfg = ax__system_config(sys);
    if (cfg->metrics.listen[0] == '\0')
        return AX_OK; /* off */
    if (ax__metrics_endpoint(sys) != NULL)
        return ax__error(AX_ESTATE, "metrics: the endpoint is serving already");
    ep = calloc(1, sizeof(*ep));
    if (ep == NULL)
        return ax__error(AX_ENOMEM, "metrics: out of memory");
    ep->sys = sys;
    ep->top_n = cfg->metrics.top_n;
    st = listen_on(ep, cfg->metrics.listen, &fd);
    if (st != AX_OK) {
        free(ep);
        return st;
    }
    ep->daemon = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD, 0, NULL, NULL, on_request, ep,
                                  MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
                                  CONN_LIMIT, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                  (size_t)CONN_MEMORY, MHD_OPTION_CONNECTION_TIMEOUT,
                                  CONN_TIMEOUT_S, MHD_OPTION_END);
    if (ep->daemon == NULL) {
        close(fd);
        free(ep);
        return ax__error(AX_EIO, "metrics: libmicrohttpd could not start on %s", cfg->metrics.listen);
    }
    st = ax__metrics_set_endpoint(sys, endpoint_stop, ep);
    if (st != AX_OK)
        endpoint_stop(ep);
    return st;
}

ax_status_t ax_metrics_address(ax_system_t *sys, char *buf, size_t size)
{
    endpoint_t *ep = sys != NULL ? ax__metrics_endpoint(sys) : NULL;

    if (buf == NULL)
        return ax__error(AX_EINVAL, "metrics_address: NULL buffer");
    if (ep == NULL) {
        if (size > 0)
            buf[0] = '\0';
        return ax__error(AX_ESTATE, "metrics_address: the endpoint is not serving");
    }
    snprintf(buf, size, "%s", ep->addr);
    return AX_OK;
}
