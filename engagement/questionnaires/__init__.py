"""Questionnaires patients answer from a signed link: FHIR Questionnaire definitions (imported, or
the defaults of definitions.py), their responses (FHIR-shaped, encrypted), scoring, and what a
score does (an Observation on the record; an urgent task at the organization's threshold).

    definitions.py  PHQ-9, GAD-7, medication check; how each is scored
    models.py       Questionnaire, QuestionnaireResponse (registered on engagement's models)
    scoring.py      the items and options of a definition; totals, bands, alerts
    services.py     import, defaults, send (record and rule), save/submit answers, the link's state
    selectors.py    reads for views, export and analytics
    views.py        the record's "Send questionnaire", the list/import page, the patient's form
"""
