"""One router per group of pages; web/app.py includes each of them.

Every route is ``include_in_schema=False`` (pages are not the API) and answers through
``templating.render``; what a page reads, it reads through ``crm/access.py`` with the
viewer's principal (web/deps.py).
"""
