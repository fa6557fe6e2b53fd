"""tests.wsgi_apps' app behind an import that takes a second (a big app loading)."""

import time

time.sleep(1.0)

from tests.wsgi_apps import app  # noqa: E402,F401  (imported after the deliberate delay)
