{{/* The chart's name, or nameOverride. */}}
{{- define "inferbudget.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object names: fullnameOverride, else the release name, with the chart's name appended unless it has it. */}}
{{- define "inferbudget.fullname" -}}
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

{{/* Labels on every object. */}}
{{- define "inferbudget.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "inferbudget.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator's pods (never change them: a Deployment's selector is immutable). */}}
{{- define "inferbudget.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inferbudget.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "inferbudget.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "inferbudget.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* true when the prometheus-operator API serves this kind, or the force flag asks for it anyway. */}}
{{- define "inferbudget.monitoringApi" -}}
{{- $root := index . 0 }}{{- $kind := index . 1 }}{{- $force := index . 2 }}
{{- if or $force ($root.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" $kind)) }}true{{ end }}
{{- end }}
