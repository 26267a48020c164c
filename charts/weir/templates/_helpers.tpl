{{/* The chart name, or nameOverride. */}}
{{- define "weir.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name: fullnameOverride, or "<release>-<name>", or just the
release name when it already contains the chart name. 63 characters at most (DNS label);
the longest suffix added ("-controller") is kept within that too.
*/}}
{{- define "weir.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "weir.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "weir.labels" -}}
helm.sh/chart: {{ include "weir.chart" . }}
{{ include "weir.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: weir
{{- end }}

{{/* The operator pods' identity: Deployment, Services and the PodDisruptionBudget select it. */}}
{{- define "weir.selectorLabels" -}}
app.kubernetes.io/name: {{ include "weir.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "weir.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "weir.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "weir.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The Service that selects the elected leader: brokers' controller address. */}}
{{- define "weir.controllerServiceName" -}}
{{- printf "%s-controller" (include "weir.fullname" .) }}
{{- end }}

{{- define "weir.metricsServiceName" -}}
{{- printf "%s-metrics" (include "weir.fullname" .) }}
{{- end }}

{{/* The Lease the replicas elect their leader with. */}}
{{- define "weir.leaseName" -}}
{{- include "weir.fullname" . }}
{{- end }}

{{/* rbac.scope, checked: "cluster" or "namespace". */}}
{{- define "weir.rbacScope" -}}
{{- $scope := .Values.rbac.scope }}
{{- if not (has $scope (list "cluster" "namespace")) }}
{{- fail (printf "rbac.scope must be \"cluster\" or \"namespace\", not %q" (toString $scope)) }}
{{- end }}
{{- $scope }}
{{- end }}

{{/* WEIR_WATCH_NAMESPACE: empty (every namespace) or the release namespace. */}}
{{- define "weir.watchNamespace" -}}
{{- if eq (include "weir.rbacScope" .) "namespace" }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{/*
The rules for what the operator manages: the weir.dev resources and, per Cluster, the
broker StatefulSet, its Services, ConfigMap, ServiceAccount and PodDisruptionBudget.
Pods: broker readiness, and the leader's own label. PVCs: only deleted (the retention
policy), never created (the StatefulSet's claim templates do that).
*/}}
{{- define "weir.operatorRules" -}}
- apiGroups: ["weir.dev"]
  resources: ["clusters", "topics"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["weir.dev"]
  resources: ["clusters/status", "topics/status"]
  verbs: ["get", "update", "patch"]
- apiGroups: ["weir.dev"]
  resources: ["clusters/finalizers", "topics/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: [""]
  resources: ["services", "configmaps", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
