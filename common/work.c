#include "common/work.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/cleanup.h"

#define WORK_THREADS_MAX 64

struct work_list {
	struct work *head, *tail;
};

struct work_pool {
	struct loop *loop;
	struct loop_io io; /* the eventfd: done works are waiting */
	int efd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct work_list queue; /* submitted, not started (under mu) */
	struct work_list done;  /* fn returned, done not run (under mu) */
	bool stopping;          /* under mu: workers exit once the queue is empty */
	size_t pending;         /* the loop thread's count: submitted - done run */
	pthread_t threads[WORK_THREADS_MAX];
	unsigned nthreads;
};

static void list_push(struct work_list *l, struct work *w)
{
	w->next = NULL;
	if (l->tail)
		l->tail->next = w;
	else
		l->head = w;
	l->tail = w;
}

static struct work *list_pop(struct work_list *l)
{
	struct work *w = l->head;
	if (w) {
		l->head = w->next;
		if (!l->head)
			l->tail = NULL;
		w->next = NULL;
	}
	return w;
}

static void *worker_main(void *arg)
{
	struct work_pool *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct work *w = list_pop(&p->queue);
		if (!w) {
			if (p->stopping)
				break;
			pthread_cond_wait(&p->cv, &p->mu);
			continue;
		}
		pthread_mutex_unlock(&p->mu);
		w->fn(w);
		pthread_mutex_lock(&p->mu);
		/* one eventfd write per batch: the loop takes the whole list */
		bool wake = p->done.head == NULL;
		list_push(&p->done, w);
		if (wake) {
			uint64_t one = 1;
			/* cannot fail short of a counter overflow (2^64 - 1) */
			ssize_t n = write(p->efd, &one, sizeof(one));
			(void)n;
		}
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Runs the done callbacks of every work whose fn has returned. */
static void run_done(struct work_pool *p)
{
	uint64_t count;
	ssize_t n = read(p->efd, &count, sizeof(count)); /* EAGAIN: nothing new */
	(void)n;
	pthread_mutex_lock(&p->mu);
	struct work_list done = p->done;
	p->done = (struct work_list){NULL, NULL};
	pthread_mutex_unlock(&p->mu);
	for (struct work *w; (w = list_pop(&done));) {
		p->pending--;
		w->done(w); /* may free w */
	}
}

static void on_eventfd(struct loop *loop, struct loop_io *io, uint32_t events)
{
	run_done(loop_container_of(io, struct work_pool, io));
}

static void stop_threads(struct work_pool *p, unsigned n)
{
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < n; i++)
		pthread_join(p->threads[i], NULL);
}

int work_pool_new(struct loop *loop, unsigned nthreads, struct work_pool **ret,
                  struct dy_error **err)
{
	if (nthreads < 1 || nthreads > WORK_THREADS_MAX)
		return dy_error_as(err, DY_E_INVALID, "worker threads: %u is out of range 1..%d",
		                   nthreads, WORK_THREADS_MAX);
	struct work_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return dy_error_errno(err, ENOMEM, "worker pool");
	p->loop = loop;
	p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->efd < 0) {
		int e = errno;
		free(p);
		return dy_error_errno(err, e, "eventfd");
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	loop_io_init(&p->io, p->efd, on_eventfd);
	int r = loop_io_set(loop, &p->io, LOOP_READ, err);
	if (r < 0)
		goto fail;

	/* the threads start with every signal blocked, whatever the caller's
	 * mask: a signal meant for the loop's signalfd must not land on one */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (; p->nthreads < nthreads; p->nthreads++) {
		int e = pthread_create(&p->threads[p->nthreads], NULL, worker_main, p);
		if (e != 0) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			r = dy_error_errno(err, e, "start worker thread %u", p->nthreads + 1);
			goto fail;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	*ret = p;
	return 0;

fail:
	stop_threads(p, p->nthreads);
	loop_io_stop(loop, &p->io);
	close(p->efd);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
	return r;
}

void work_submit(struct work_pool *p, struct work *w, work_fn fn, work_fn done)
{
	w->fn = fn;
	w->done = done;
	p->pending++;
	pthread_mutex_lock(&p->mu);
	list_push(&p->queue, w);
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

size_t work_pool_pending(const struct work_pool *p)
{
	return p->pending;
}

void work_pool_free(struct work_pool *p)
{
	if (!p)
		return;
	/* the workers empty the queue before they exit */
	stop_threads(p, p->nthreads);
	run_done(p);
	loop_io_stop(p->loop, &p->io);
	close(p->efd);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
