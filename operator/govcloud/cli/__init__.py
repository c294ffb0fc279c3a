"""`kubectl govcloud`: the department's and the bureau's view of the government cloud, with the
user's own rights (their kubeconfig, context and impersonation flags), never the operator's.

main.py parses the command line and turns refusals into one-line messages; commands.py reads
and writes through govcloud.k8s.user; roles.py (who the user is in which tenant) and views.py
(tables, JSON, YAML) are pure.
"""
