{{/*
Base name of every resource: fullnameOverride, else the release name when it already says
"govcloud" (helm install govcloud ... -> govcloud), else "<release>-govcloud".
*/}}
{{- define "govcloud.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else if contains "govcloud" .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-govcloud" .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "govcloud.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "govcloud.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "govcloud.selectorLabels" -}}
app.kubernetes.io/name: {{ include "govcloud.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "govcloud.labels" -}}
helm.sh/chart: {{ include "govcloud.chart" . }}
{{ include "govcloud.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: govcloud
{{- end -}}

{{- define "govcloud.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "govcloud.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "govcloud.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "govcloud.metricsServiceName" -}}
{{- printf "%s-metrics" (include "govcloud.fullname" .) -}}
{{- end -}}

{{/* The job label of the operator's scrape target, used by the alert rules. */}}
{{- define "govcloud.metricsJob" -}}
{{- default (include "govcloud.metricsServiceName" .) .Values.prometheusRule.job -}}
{{- end -}}

{{/* Platform namespaces: the configured ones plus the release namespace, without repeats. */}}
{{- define "govcloud.platformNamespaces" -}}
{{- append .Values.operator.platformNamespaces .Release.Namespace | uniq | join "," -}}
{{- end -}}

{{/*
Namespaces no tenant may ever manage, as a CEL list: default, the release namespace and the
platform namespaces (kube-* and the govcloud.io/protected label are checked by the policies).
*/}}
{{- define "govcloud.protectedNamespaces" -}}
{{- concat (list "default" .Release.Namespace) .Values.operator.platformNamespaces | uniq | toJson -}}
{{- end -}}

{{/*
The govcloud.io resources (plural names) the operator serves: one per CRD in crds/, so the
RBAC follows the generated CRDs and a new kind cannot ship without its permissions.
*/}}
{{- define "govcloud.kinds" -}}
{{- $kinds := list -}}
{{- range $path, $_ := .Files.Glob "crds/*.govcloud.io.yaml" -}}
{{- $kinds = append $kinds (base $path | trimSuffix ".govcloud.io.yaml") -}}
{{- end -}}
{{- toJson (sortAlpha $kinds) -}}
{{- end -}}
