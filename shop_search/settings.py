"""Settings of the demo shop.

Configured from the environment, with embedded defaults that need no server:

* ``DATABASE_URL``: SQLite file under ``var/`` by default.
* ``REDIS_URL``: when set, django-redis cache and Celery broker; otherwise a
  file-based cache under ``var/cache`` (shared by every process) and a
  filesystem broker under ``var/celery``.
* ``ELASTICSEARCH_URL``: when set, the Elasticsearch recall backend; otherwise
  the embedded tantivy engine under ``var/suggestions``.
* ``TRUSTED_PROXIES``: comma-separated addresses/CIDRs of the reverse proxies in
  front of the site; only then is ``X-Forwarded-For`` read (API throttles and
  the admin's login lockout use the same client address).
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SHOP_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = os.environ.get("SECRET_KEY", "demo-only-insecure-key-change-me")
DEBUG = os.environ.get("DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served locally: the docs page works offline
    "suggestions",
    "catalog",
    # Admin login rate limit (see AXES_* below). Last: its checks read the others.
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Anonymous shoppers' id in a signed cookie: no session row per visitor.
    "suggestions.middleware.ShopperCookieMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First, so that a locked-out username+address is refused before any
    # password is checked. It needs the request: use force_login in tests.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "shop_search.urls"
WSGI_APPLICATION = "shop_search.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "shop_search" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded default is written by the web process and two workers at
    # once: write-ahead logging lets readers and a writer work together,
    # IMMEDIATE transactions take the write lock up front (no upgrade deadlock,
    # which the busy timeout cannot wait out), and a writer waits up to 20 s.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    }
else:
    # Files under var/cache: shared by the web process and the workers, as the
    # suggestion cache version must be (a merchandiser's change made in the
    # admin, or a publish in a worker, shows in every process's next answer).
    # A per-process local-memory cache would keep each process's own version.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
            "OPTIONS": {"MAX_ENTRIES": 5000},
        }
    }
    # axes warns that a file cache's increments are not atomic: two wrong
    # passwords at the same instant may count once. Acceptable for a demo on
    # one machine; hosts behind REDIS_URL get atomic counts.
    SILENCED_SYSTEM_CHECKS = ["axes.W001"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns on a missing root
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

LOGIN_URL = "admin:login"

# --- admin login rate limit (django-axes) ---------------------------------------
# The fifth wrong password in a row for one username from one address locks that
# pair out for 15 minutes (HTTP 429, even for the right password); a right
# password before that resets the count.
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Attempts are counted in the cache under hashed keys: no raw client address
# is written to the database (the database handler would store it).
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
# The cache handler writes none of axes' tables: their admin pages would stay empty.
AXES_ENABLE_ADMIN = False
# The same client address as the API throttles: X-Forwarded-For only from the
# proxies in SUGGESTIONS_TRUSTED_PROXIES (never from the client itself).
AXES_CLIENT_IP_CALLABLE = "suggestions.api.throttling.client_address"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_THROTTLE_RATES": {
        "suggestions.suggest": os.environ.get("THROTTLE_SUGGEST", "6000/min"),
        "suggestions.search": os.environ.get("THROTTLE_SEARCH", "600/min"),
        "suggestions.events": os.environ.get("THROTTLE_EVENTS", "600/min"),
        "suggestions.history": os.environ.get("THROTTLE_HISTORY", "120/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "django-shop-suggestions API",
    "DESCRIPTION": "Suggest, search, events and history endpoints of the demo shop.",
    "VERSION": "0.1.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- suggestions ---------------------------------------------------------------
SUGGESTIONS_ADAPTER = "catalog.adapter.CatalogAdapter"
SUGGESTIONS_TRUSTED_PROXIES = [p for p in os.environ.get("TRUSTED_PROXIES", "").split(",") if p.strip()]
SUGGESTIONS_DATA_DIR = str(VAR_DIR / "suggestions")
# /api/suggestions/metrics/ for a Prometheus server holding this bearer token
# (staff logins can read it without one).
SUGGESTIONS_METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
ELASTICSEARCH_URL = os.environ.get("ELASTICSEARCH_URL", "")
if ELASTICSEARCH_URL:
    SUGGESTIONS_RECALL_BACKENDS = {
        "default": {
            "BACKEND": "suggestions.recall.elasticsearch",
            "OPTIONS": {"HOSTS": [ELASTICSEARCH_URL], "INDEX_PREFIX": os.environ.get("ES_INDEX_PREFIX", "shop")},
        }
    }
else:
    SUGGESTIONS_RECALL_BACKENDS = {"default": {"BACKEND": "suggestions.recall.tantivy", "OPTIONS": {}}}

# --- Celery ----------------------------------------------------------------------
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
else:
    # A broker that needs no server: messages are files under var/celery.
    _broker_dir = VAR_DIR / "celery" / "queue"
    _broker_dir.mkdir(parents=True, exist_ok=True)
    # kombu's filesystem transport, writing each message aside and renaming it
    # into place (shop_search/filesystem_broker.py): a worker never reads half
    # a message. "localhost" is only a name (the transport reads the folders
    # below); without one kombu warns that it falls back to it.
    CELERY_BROKER_URL = "atomicfs://localhost//"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        # Exchange bindings; kombu's default is ./control in the working directory.
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = os.environ.get("CELERY_TASK_ALWAYS_EAGER", "0") == "1"
CELERY_TASK_DEFAULT_QUEUE = "default"
# The host project owns routing: GPU work goes to workers started with `-Q gpu`.
CELERY_TASK_ROUTES = {
    "suggestions.ml.*": {"queue": "gpu"},
    "suggestions.*": {"queue": "default"},
}
CELERY_BEAT_SCHEDULE = {
    "suggestions-build-nightly": {"task": "suggestions.suggestions.build", "schedule": crontab(hour=3, minute=0)},
    "suggestions-garbage-collect": {"task": "suggestions.history.garbage_collect", "schedule": crontab(hour=4, minute=0)},
    # The learning loop, nightly after the build: each kind is retrained on the
    # shop's data and promoted only when better on the same held-out data.
    "suggestions-retrain-suggestion-ranker": {"task": "suggestions.ml.retrain", "args": ["suggestion_ranker"],
                                              "schedule": crontab(hour=3, minute=30)},
    "suggestions-retrain-understanding": {"task": "suggestions.ml.retrain", "args": ["understanding"],
                                          "schedule": crontab(hour=4, minute=30)},
    # Search analytics for the admin's analytics page: yesterday and today,
    # rebuilt every hour (nightly is the least a host should schedule).
    "suggestions-analytics-rollup": {"task": "suggestions.analytics.rollup", "schedule": crontab(minute=10)},
    # Pending synonyms from co-clicks, for a merchandiser to approve in the admin.
    "suggestions-mine-synonyms": {"task": "suggestions.synonyms.mine", "schedule": crontab(hour=3, minute=15)},
    # The search ranker from product clicks (its click statistics are refreshed on promotion), and the
    # active version's click statistics from the whole history (erasures and retention reach them).
    "suggestions-retrain-search-ranker": {"task": "suggestions.ml.retrain", "args": ["search_ranker"],
                                          "schedule": crontab(hour=5, minute=0)},
    "suggestions-refresh-search-clicks": {"task": "suggestions.ml.refresh_search_clicks",
                                          "schedule": crontab(hour=5, minute=30)},
    # Generated refinements: retrain the generator (gated like every kind), then
    # propose refinements of head, zero-result, new-type and thin-prefix searches
    # for review under "Generated refinements" in the admin.
    "suggestions-retrain-generator": {"task": "suggestions.ml.retrain", "args": ["generator"],
                                      "schedule": crontab(hour=5, minute=15)},
    "suggestions-generate-refinements": {"task": "suggestions.ml.generate_refinements",
                                         "schedule": crontab(hour=6, minute=0)},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "suggestions": {"handlers": ["console"], "level": os.environ.get("SUGGESTIONS_LOG_LEVEL", "INFO")},
        # Unhandled exceptions (500s) with their traceback, DEBUG or not: Django's
        # default sends them to the console only when DEBUG is on (and else to
        # ADMINS by mail, which the demo has none of).
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}
