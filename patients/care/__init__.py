"""Care coordination inside the patients app: care teams, care plans, tasks, work queues, notes and
the patient timeline (services, selectors, forms, views; the models are in patients/models/care.py)."""
