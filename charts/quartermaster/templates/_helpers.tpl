{{/* The release's full name, at most 63 characters. */}}
{{- define "qm.fullname" -}}
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

{{- define "qm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "qm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "qm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: call with (dict "root" $ "component" "api"). */}}
{{- define "qm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qm.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "qm.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "qm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "qm.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "qm.secretName" -}}
{{- default (printf "%s-secrets" (include "qm.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* Whether the JWT algorithm verifies with a public key (RS256, ES256, EdDSA). */}}
{{- define "qm.jwtAsymmetric" -}}
{{- if ne (.Values.config.jwt_algorithm | default "HS256") "HS256" -}}true{{- end -}}
{{- end -}}

{{/* One environment variable from the Secret. */}}
{{- define "qm.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "qm.secretName" .root }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end -}}

{{/* The secret settings every process reads. */}}
{{- define "qm.secretEnvs" -}}
{{- $k := .Values.secrets.keys -}}
{{ include "qm.secretEnv" (dict "root" . "name" "QM_DATABASE_URL" "key" $k.databaseUrl) }}
{{- if include "qm.jwtAsymmetric" . }}
{{ include "qm.secretEnv" (dict "root" . "name" "QM_JWT_PUBLIC_KEY" "key" $k.jwtPublicKey) }}
{{- else }}
{{ include "qm.secretEnv" (dict "root" . "name" "QM_JWT_SECRET" "key" $k.jwtSecret) }}
{{- end }}
{{ include "qm.secretEnv" (dict "root" . "name" "QM_CONNECTOR_KEYS" "key" $k.connectorKeys) }}
{{ include "qm.secretEnv" (dict "root" . "name" "QM_SMTP_URL" "key" $k.smtpUrl "optional" true) }}
{{ include "qm.secretEnv" (dict "root" . "name" "QM_PLATFORM_TOKEN" "key" $k.platformToken "optional" true) }}
{{- end -}}

{{/* Writable scratch space: the root filesystem is read-only. */}}
{{- define "qm.volumes" -}}
- name: data
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "qm.volumeMounts" -}}
- name: data
  mountPath: /var/lib/quartermaster
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* What every pod shares: service account, security context, scheduling. */}}
{{- define "qm.podCommon" -}}
serviceAccountName: {{ include "qm.serviceAccountName" .root }}
automountServiceAccountToken: false
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .component.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
