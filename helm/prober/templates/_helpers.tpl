{{/* The chart's name, at most 63 characters (a DNS label). */}}
{{- define "prober.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the prefix of every object's name. */}}
{{- define "prober.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "prober.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "prober.labels" -}}
helm.sh/chart: {{ include "prober.chart" . }}
{{ include "prober.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: prober
{{- end -}}

{{/* The labels that select the release's pods (they never change across upgrades). */}}
{{- define "prober.selectorLabels" -}}
app.kubernetes.io/name: {{ include "prober.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "prober.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "prober.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "prober.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The config file's text, as the ConfigMap carries it. */}}
{{- define "prober.configText" -}}
{{- if kindIs "string" .Values.config -}}
{{- .Values.config -}}
{{- else -}}
{{- toYaml .Values.config -}}
{{- end -}}
{{- end -}}

{{/* The directory of the state file: the mount point of the state volume. */}}
{{- define "prober.stateDir" -}}
{{- dir .Values.state.path -}}
{{- end -}}

{{/*
The environment variable names the config reads (${secret.NAME} and ${env.NAME}; not an
escaped $${...}) that no env / secretEnv / extraEnv entry sets: NOTES.txt warns about them.
*/}}
{{- define "prober.unsetEnv" -}}
{{- $set := dict -}}
{{- range $name, $_ := .Values.env }}{{ $_ := set $set $name true }}{{ end -}}
{{- range $name, $_ := .Values.secretEnv }}{{ $_ := set $set $name true }}{{ end -}}
{{- range .Values.extraEnv }}{{ $_ := set $set .name true }}{{ end -}}
{{- $missing := list -}}
{{- range regexFindAll "(?:^|[^$])\\$\\{(?:secret|env)\\.[A-Za-z_][A-Za-z0-9_]*\\}" (include "prober.configText" .) -1 -}}
{{- $name := regexReplaceAll "^[^$]?\\$\\{(?:secret|env)\\.([A-Za-z0-9_]+)\\}$" . "${1}" -}}
{{- if and (not (hasKey $set $name)) (not (has $name $missing)) -}}
{{- $missing = append $missing $name -}}
{{- end -}}
{{- end -}}
{{- join ", " $missing -}}
{{- end -}}
