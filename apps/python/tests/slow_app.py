"""tests.wsgi_apps' app behind an import that takes a second (a big app loading). With
SLOW_APP_MARK set, creates that file first: the import has started."""

import os
import time

if os.environ.get("SLOW_APP_MARK"):
    open(os.environ["SLOW_APP_MARK"], "w").close()
time.sleep(1.0)

from tests.wsgi_apps import app  # noqa: E402,F401  (imported after the deliberate delay)
