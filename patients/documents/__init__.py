"""Documents on a patient's record: upload (type checked by content, bytes encrypted), list,
download (access-logged), soft delete (services, selectors, forms, uploads, views; the models are
in patients/models/documents.py)."""
