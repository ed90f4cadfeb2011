"""The record store: models, access control, records, activities, timeline.

The only code that writes CRM records. Knows no mail protocol.
"""
