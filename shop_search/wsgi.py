import os
import threading

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop_search.settings")
application = get_wsgi_application()

# Off the request path, at start: load what the first requests would (jieba's
# dictionary, the recall index, the ranked orders: otherwise the first Chinese
# query of each process waits 1-2 s), then freeze the objects alive so that the
# garbage collector's full collections skip them (suggestions/process.py).
from suggestions import services  # noqa: E402

threading.Thread(target=services.prepare_web_process, name="suggestions-warm-up", daemon=True).start()
