"""Names shared by every layer: API group, labels, annotations, finalizers, field manager."""

GROUP = "govcloud.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

FIELD_MANAGER = "govcloud-operator"
FINALIZER = f"{GROUP}/finalizer"

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "govcloud-operator"
LABEL_TENANT = f"{GROUP}/tenant"
LABEL_TIER = f"{GROUP}/tier"
LABEL_SECURITY_LEVEL = f"{GROUP}/security-level"
LABEL_TENANT_NAMESPACE = f"{GROUP}/namespace"
LABEL_ORPHANED = f"{GROUP}/orphaned"
LABEL_PLATFORM = f"{GROUP}/platform"
# A namespace no tenant may ever manage (set by the platform team).
LABEL_PROTECTED = f"{GROUP}/protected"
# Written on an existing namespace by someone who may write namespaces: the tenant may adopt it.
ADOPTABLE_BY = f"{GROUP}/adoptable-by"

ANNOTATION_ADOPT = f"{GROUP}/adopt"
ANNOTATION_ADOPTED = f"{GROUP}/adopted"
ANNOTATION_DISPLAY_NAME = f"{GROUP}/display-name"
ANNOTATION_ORPHANED_AT = f"{GROUP}/orphaned-at"
# The UID of the CloudTenant that created a namespace: only that tenant may ever delete it.
ANNOTATION_TENANT_UID = f"{GROUP}/tenant-uid"
# On a CloudTenant, its own name: deletionPolicy Delete may delete its namespaces.
ANNOTATION_CONFIRM_DELETE = f"{GROUP}/confirm-delete"
# On a tenant's finance ClusterRole: the paying level its label's hash stands for.
ANNOTATION_PAYER = f"{GROUP}/payer"
# On a namespace: writes are frozen (the tenant is suspended, or the namespace was released).
LABEL_FROZEN = f"{GROUP}/frozen"
# On a namespace of a tenant with a quota: the chart's admission policy admits no pod there
# until the namespace's govcloud-quota is enforced (see charts/.../templates/quota-first.yaml).
LABEL_QUOTA = f"{GROUP}/quota"
# On a tenant's finance ClusterRole: which paying level's finance role aggregates it (a hash of
# the payer, which may be Chinese); see desired/rbac.py and templates/finance-readers.yaml.
LABEL_FINANCE_PAYER = f"finance.{GROUP}/payer"
QUOTA_REQUIRED = "required"

PSA_ENFORCE = "pod-security.kubernetes.io/enforce"
PSA_ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"
PSA_WARN = "pod-security.kubernetes.io/warn"
PSA_AUDIT = "pod-security.kubernetes.io/audit"
