import os
import threading

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop_search.settings")
application = get_wsgi_application()

# Load jieba's dictionary now, off the request path: otherwise the first Chinese
# query of each process waits 1-2 s for it.
from suggestions.nlp.segment import warm_up  # noqa: E402

threading.Thread(target=warm_up, name="jieba-warm-up", daemon=True).start()
