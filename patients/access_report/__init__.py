"""Who viewed or changed a patient's record (issue 13, item 2): the access log's reads and the
change log's writes about one patient, for compliance officers and administrators."""
