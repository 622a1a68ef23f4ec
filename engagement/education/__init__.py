"""The education library (issue 15 item 1): articles and short videos per organization, in language
versions, matched to conditions (SNOMED CT / ICD-10-CM), medications (RxNorm) and care-plan
templates; sent through the outbox with a signed link to a patient page whose opening is recorded.

    models.py     items, their language versions, and each send to a patient
    sanitize.py   the one rich-text cleaner (nh3): what staff write is what patients may safely see
    services.py   writes: items and versions, a send from the record, the rule-triggered sends
    selectors.py  reads: the library, matching, the version in a patient's language, a patient's sends
    views.py      the staff library and preview, the record's Education tab, the patient page
"""
