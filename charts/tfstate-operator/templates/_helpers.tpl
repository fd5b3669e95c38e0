{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "tfstate-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release name, plus the chart name unless the release already contains it. */}}
{{- define "tfstate-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tfstate-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tfstate-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tfstate-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tfstate-operator.labels" -}}
helm.sh/chart: {{ include "tfstate-operator.chart" . }}
{{ include "tfstate-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "tfstate-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tfstate-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "true" when leader election is on: asked for, or needed because of several replicas. */}}
{{- define "tfstate-operator.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) }}true{{ end }}
{{- end }}

{{/* Where the operator serves /metrics. With metrics off it shares the health listener
     (the binary always serves /metrics), and no port, Service or ServiceMonitor exposes it. */}}
{{- define "tfstate-operator.metricsPort" -}}
{{- if .Values.metrics.enabled }}{{ .Values.metrics.port }}{{ else }}{{ .Values.health.port }}{{ end }}
{{- end }}

{{/* Mount point of the optional AWS CA bundle ConfigMap. */}}
{{- define "tfstate-operator.caBundleDir" -}}
/etc/tfstate-operator/aws-ca
{{- end }}

{{/* The rules the operator needs on the namespaces it watches (nothing on Secrets). */}}
{{- define "tfstate-operator.watchRules" -}}
- apiGroups: ["tfstate.dev"]
  resources: ["terraformstatebackends"]
  # The finalizer is added and removed with a JSON patch.
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["tfstate.dev"]
  resources: ["terraformstatebackends/status"]
  # Status is written by server-side apply.
  verbs: ["get", "patch"]
- apiGroups: ["tfstate.dev"]
  resources: ["terraformstatebackends/finalizers"]
  # The published ConfigMap's ownerReference sets blockOwnerDeletion, which clusters with
  # the OwnerReferencesPermissionEnforcement admission plugin authorize as this.
  verbs: ["update"]
- apiGroups: [""]
  resources: ["configmaps"]
  # The published backend configuration: read, watched (owned), server-side applied.
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* The rules the operator needs cluster-wide in every mode: TerraformStatePolicy objects are
     cluster-scoped and decide what the backends of each namespace may do (read only). */}}
{{- define "tfstate-operator.policyRules" -}}
- apiGroups: ["tfstate.dev"]
  resources: ["terraformstatepolicies"]
  verbs: ["get", "list", "watch"]
# A namespace's labels choose the TerraformStatePolicy that applies to its backends.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
{{- end }}
