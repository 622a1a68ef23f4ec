"""Scheduling inside the patients app: practitioners, appointments, the calendar and telehealth join
links (services, selectors, forms, views; the models are in patients/models/scheduling.py)."""
