"""django-shop-suggestions: search suggestions for Django shops.

The public entry points live in :mod:`suggestions.services`; views, tasks, admin
actions and management commands are thin layers over it.
"""

__version__ = "0.1.0"
