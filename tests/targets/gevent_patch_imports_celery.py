"""What ``celery worker --pool gevent`` does at start, in small: a lazy object whose ``__class__``
imports ``celery.app.amqp`` (as Celery's proxies do) is alive when ``gevent.monkey.patch_all()``
scans the live objects. Then a span in each of 20 greenlets; prints what the integration's
modules captured."""

import sys


class LazyProxy:
    @property
    def __class__(self):
        import celery.app.amqp  # noqa: F401 - a trigger of the Celery integration

        return LazyProxy


proxy = LazyProxy()

from gevent import monkey  # noqa: E402

monkey.patch_all()

import gevent  # noqa: E402
from opentelemetry import trace  # noqa: E402

assert "celery.app.amqp" in sys.modules, "the scan did not evaluate the proxy"
tracer = trace.get_tracer("target")


def work(number):
    with tracer.start_as_current_span(f"greenlet-{number}"):
        gevent.sleep(0.001)


gevent.joinall([gevent.spawn(work, number) for number in range(20)])
import select  # noqa: E402

from kombu.utils import eventio  # noqa: E402 - imported by the contrib Celery instrumentation

# Imported by the integration, kombu keeps what select was then: gevent's, once patching is over.
print("kombu's select is gevent's:", eventio._selectf is select.select and eventio.xpoll is select.poll, flush=True)
