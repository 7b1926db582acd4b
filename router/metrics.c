/* Prometheus text exposition of the router's counters. */
#include "router/metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/rlog.h"

const uint64_t metrics_bucket_us[METRICS_NBUCKETS] = {
    500,    1000,   2500,   5000,    10000,   25000,   50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

void metrics_request(struct metrics *m, int status, enum hk_code code, uint64_t usec)
{
	m->requests++;
	if (status >= 100 && status < 600)
		m->status[status]++;
	if (code > HK_NONE && code < _HK_MAX)
		m->hcode[code]++;
	size_t i = 0;
	while (i < METRICS_NBUCKETS && usec > metrics_bucket_us[i])
		i++;
	m->lat_bucket[i]++;
	m->lat_count++;
	m->lat_sum_us += usec;
}

int metrics_render(const struct metrics *m, const struct route_table *t, const struct rlog *l,
                   char **ret, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL)
		return -ENOMEM;
	fprintf(f,
	        "# HELP dyno_router_requests_total Requests answered.\n"
	        "# TYPE dyno_router_requests_total counter\n"
	        "dyno_router_requests_total %llu\n",
	        (unsigned long long)m->requests);
	fprintf(f, "# HELP dyno_router_responses_total Responses by status.\n"
	           "# TYPE dyno_router_responses_total counter\n");
	for (int s = 100; s < 600; s++)
		if (m->status[s])
			fprintf(f, "dyno_router_responses_total{status=\"%d\"} %llu\n", s,
			        (unsigned long long)m->status[s]);
	fprintf(f, "# HELP dyno_router_errors_total Router errors by H-code.\n"
	           "# TYPE dyno_router_errors_total counter\n");
	/* the enum is in the order of the codes: H10, H12... */
	for (int c = HK_NONE + 1; c < _HK_MAX; c++)
		if (m->hcode[c])
			fprintf(f, "dyno_router_errors_total{code=\"%s\"} %llu\n",
			        hk_code_str((enum hk_code)c), (unsigned long long)m->hcode[c]);
	fprintf(f, "# HELP dyno_router_request_duration_seconds Time from the request's first "
	           "byte to its last response byte.\n"
	           "# TYPE dyno_router_request_duration_seconds histogram\n");
	uint64_t cum = 0;
	for (size_t i = 0; i < METRICS_NBUCKETS; i++) {
		cum += m->lat_bucket[i];
		fprintf(f, "dyno_router_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
		        (double)metrics_bucket_us[i] / 1e6, (unsigned long long)cum);
	}
	cum += m->lat_bucket[METRICS_NBUCKETS];
	fprintf(f,
	        "dyno_router_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
	        "dyno_router_request_duration_seconds_sum %.6f\n"
	        "dyno_router_request_duration_seconds_count %llu\n",
	        (unsigned long long)cum, (double)m->lat_sum_us / 1e6,
	        (unsigned long long)m->lat_count);
	fprintf(f,
	        "# TYPE dyno_router_connections_accepted_total counter\n"
	        "dyno_router_connections_accepted_total %llu\n"
	        "# TYPE dyno_router_client_connections gauge\n"
	        "dyno_router_client_connections %llu\n"
	        "# TYPE dyno_router_routes_reloads_total counter\n"
	        "dyno_router_routes_reloads_total %llu\n"
	        "# TYPE dyno_router_routes_reload_errors_total counter\n"
	        "dyno_router_routes_reload_errors_total %llu\n"
	        "# TYPE dyno_router_routes_version gauge\n"
	        "dyno_router_routes_version %lld\n"
	        "# TYPE dyno_router_health_changes_total counter\n"
	        "dyno_router_health_changes_total %llu\n"
	        "# TYPE dyno_router_log_lines_sent_total counter\n"
	        "dyno_router_log_lines_sent_total %llu\n"
	        "# TYPE dyno_router_log_lines_dropped_total counter\n"
	        "dyno_router_log_lines_dropped_total %llu\n",
	        (unsigned long long)m->accepted, (unsigned long long)m->open_clients,
	        (unsigned long long)m->reloads, (unsigned long long)m->reload_errors,
	        (long long)(t ? t->version : 0), (unsigned long long)m->health_changes,
	        (unsigned long long)rlog_sent(l), (unsigned long long)rlog_dropped(l));
	fprintf(f,
	        "# TYPE dyno_router_stdout_lines_dropped_total counter\n"
	        "dyno_router_stdout_lines_dropped_total %llu\n",
	        (unsigned long long)rlog_out_dropped(l));
	fprintf(f, "# HELP dyno_router_backend_up 1 when the backend is healthy.\n"
	           "# TYPE dyno_router_backend_up gauge\n");
	for (size_t i = 0; t && i < t->napps; i++)
		for (size_t k = 0; k < t->apps[i].nbackends; k++) {
			const struct route_backend *b = t->apps[i].backends[k];
			fprintf(f,
			        "dyno_router_backend_up{app=\"%s\",dyno=\"%s\",addr=\"%s\"} %d\n",
			        b->app, b->dyno, b->addr_text, b->healthy ? 1 : 0);
		}
	fprintf(f, "# TYPE dyno_router_backend_draining gauge\n");
	for (size_t i = 0; t && i < t->napps; i++)
		for (size_t k = 0; k < t->apps[i].nbackends; k++) {
			const struct route_backend *b = t->apps[i].backends[k];
			fprintf(f,
			        "dyno_router_backend_draining{app=\"%s\",dyno=\"%s\",addr=\"%s\"} "
			        "%d\n",
			        b->app, b->dyno, b->addr_text, b->draining ? 1 : 0);
		}
	fprintf(f, "# TYPE dyno_router_backend_in_flight gauge\n");
	for (size_t i = 0; t && i < t->napps; i++)
		for (size_t k = 0; k < t->apps[i].nbackends; k++) {
			const struct route_backend *b = t->apps[i].backends[k];
			fprintf(f,
			        "dyno_router_backend_in_flight{app=\"%s\",dyno=\"%s\",addr=\"%s\"} "
			        "%u\n",
			        b->app, b->dyno, b->addr_text, b->inflight);
		}
	fprintf(f, "# TYPE dyno_router_backend_idle_connections gauge\n");
	for (size_t i = 0; t && i < t->napps; i++)
		for (size_t k = 0; k < t->apps[i].nbackends; k++) {
			const struct route_backend *b = t->apps[i].backends[k];
			fprintf(f,
			        "dyno_router_backend_idle_connections{app=\"%s\",dyno=\"%s\",addr="
			        "\"%s\"} "
			        "%zu\n",
			        b->app, b->dyno, b->addr_text, b->npool);
		}
	fprintf(f, "# TYPE dyno_router_backend_requests_total counter\n");
	for (size_t i = 0; t && i < t->napps; i++)
		for (size_t k = 0; k < t->apps[i].nbackends; k++) {
			const struct route_backend *b = t->apps[i].backends[k];
			fprintf(f,
			        "dyno_router_backend_requests_total{app=\"%s\",dyno=\"%s\",addr=\"%"
			        "s\"} %llu\n",
			        b->app, b->dyno, b->addr_text, (unsigned long long)b->requests);
		}
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}
