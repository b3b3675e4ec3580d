"""Demo shop catalog: Open Icecat products behind the ``suggestions`` adapter.

Not part of the distributed package. It talks to ``suggestions`` only through
:class:`catalog.adapter.CatalogAdapter` (named in ``SUGGESTIONS_ADAPTER``) and
the model signals the app follows.
"""
