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

ANNOTATION_ADOPT = f"{GROUP}/adopt"
ANNOTATION_ADOPTED = f"{GROUP}/adopted"
ANNOTATION_DISPLAY_NAME = f"{GROUP}/display-name"
ANNOTATION_ORPHANED_AT = f"{GROUP}/orphaned-at"

PSA_ENFORCE = "pod-security.kubernetes.io/enforce"
PSA_ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"
PSA_WARN = "pod-security.kubernetes.io/warn"
PSA_AUDIT = "pod-security.kubernetes.io/audit"
