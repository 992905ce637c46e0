{{/*
Names. The full name is "<release>-triage" unless the release name already
contains "triage" (then just the release name), capped at 63 characters.
*/}}
{{- define "triage.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "triage.fullname" -}}
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

{{- define "triage.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "triage.selectorLabels" -}}
app.kubernetes.io/name: {{ include "triage.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "triage.labels" -}}
helm.sh/chart: {{ include "triage.chart" . }}
{{ include "triage.selectorLabels" . }}
app.kubernetes.io/version: {{ include "triage.imageTag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: triage
{{- end -}}

{{/* Labels of one component: call with (dict "root" $ "component" "web"). */}}
{{- define "triage.componentLabels" -}}
{{ include "triage.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "triage.componentSelectorLabels" -}}
{{ include "triage.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Image */}}
{{- define "triage.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{- define "triage.image" -}}
{{- $repository := required "image.repository is required: the triage image, e.g. ghcr.io/<owner>/triage (the release workflow pushes it there)" .Values.image.repository -}}
{{- printf "%s:%s" $repository (include "triage.imageTag" .) -}}
{{- end -}}

{{/*
The Secret holding SECRET_KEY, DATABASE_URL and REDIS_URL. Fails with a clear
message when there is neither an existing Secret nor the three values.
*/}}
{{- define "triage.secretName" -}}
{{- if .Values.existingSecret -}}
{{- .Values.existingSecret -}}
{{- else -}}
{{- include "triage.requireSecretValues" . -}}
{{- include "triage.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "triage.requireSecretValues" -}}
{{- $missing := list -}}
{{- if not .Values.secret.secretKey }}{{ $missing = append $missing "secret.secretKey" }}{{ end -}}
{{- if not .Values.secret.databaseUrl }}{{ $missing = append $missing "secret.databaseUrl" }}{{ end -}}
{{- if not .Values.secret.redisUrl }}{{ $missing = append $missing "secret.redisUrl" }}{{ end -}}
{{- if $missing -}}
{{- fail (printf "triage needs its secrets: set existingSecret to the name of a Secret with the keys SECRET_KEY, DATABASE_URL and REDIS_URL (recommended), or set all of secret.secretKey, secret.databaseUrl and secret.redisUrl (missing: %s)" (join ", " $missing)) -}}
{{- end -}}
{{- end -}}

{{/*
"true" when /metrics requires METRICS_TOKEN from the Secret: metrics.bearerToken,
or a secret.metricsToken for the chart's own Secret. Fails when the chart's
Secret would need the token but none is given.
*/}}
{{- define "triage.metricsBearerToken" -}}
{{- if .Values.existingSecret -}}
{{- if .Values.metrics.bearerToken }}true{{ end -}}
{{- else if .Values.secret.metricsToken -}}
true
{{- else if .Values.metrics.bearerToken -}}
{{- fail "metrics.bearerToken is true: set secret.metricsToken to a long random token (or put METRICS_TOKEN in existingSecret)" -}}
{{- end -}}
{{- end -}}

{{/* Ingress hosts as a list of names. */}}
{{- define "triage.ingressHosts" -}}
{{- if .Values.ingress.enabled -}}
{{- toJson .Values.ingress.hosts -}}
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{/* ALLOWED_HOSTS: configured hosts, ingress hosts and localhost, without duplicates. */}}
{{- define "triage.allowedHosts" -}}
{{- $hosts := concat .Values.config.allowedHosts (include "triage.ingressHosts" . | fromJsonArray) (list "localhost") | uniq -}}
{{- join "," $hosts -}}
{{- end -}}

{{/*
The non-secret settings as NAME: value, shared by the ConfigMap and the
migrations hook (which runs before the ConfigMap exists on a first install).
*/}}
{{- define "triage.configEnv" -}}
{{- $c := .Values.config -}}
{{- $ingressHosts := include "triage.ingressHosts" . | fromJsonArray -}}
{{- $origins := $c.csrfTrustedOrigins -}}
{{- if not $origins -}}
{{- range $ingressHosts }}{{ $origins = append $origins (printf "https://%s" .) }}{{ end -}}
{{- end -}}
{{- $baseUrl := $c.baseUrl -}}
{{- if and (not $baseUrl) $ingressHosts -}}
{{- $baseUrl = printf "https://%s" (first $ingressHosts) -}}
{{- end -}}
ALLOWED_HOSTS: {{ include "triage.allowedHosts" . | quote }}
CSRF_TRUSTED_ORIGINS: {{ join "," $origins | quote }}
{{- if $baseUrl }}
BASE_URL: {{ $baseUrl | quote }}
{{- end }}
TIME_ZONE: {{ $c.timeZone | quote }}
LOG_LEVEL: {{ $c.logLevel | quote }}
LOG_FORMAT: {{ $c.logFormat | quote }}
DEBUG: "false"
SECURE_COOKIES: {{ $c.secureCookies | toString | quote }}
SECURE_HSTS_SECONDS: {{ $c.secureHstsSeconds | int | toString | quote }}
SECURE_HSTS_INCLUDE_SUBDOMAINS: {{ $c.secureHstsIncludeSubdomains | toString | quote }}
SECURE_HSTS_PRELOAD: {{ $c.secureHstsPreload | toString | quote }}
SECURE_SSL_REDIRECT: {{ $c.secureSslRedirect | toString | quote }}
TRUST_X_FORWARDED_PROTO: {{ $c.trustXForwardedProto | toString | quote }}
{{- $proxies := $c.trustedProxies }}
{{- if kindIs "invalid" $proxies }}{{ $proxies = ternary 1 0 .Values.ingress.enabled }}{{ end }}
TRUSTED_PROXIES: {{ $proxies | int | toString | quote }}
DATABASE_CONNECT_TIMEOUT: {{ $c.databaseConnectTimeout | int | toString | quote }}
DATABASE_CONN_MAX_AGE: {{ $c.databaseConnMaxAge | int | toString | quote }}
REDIS_TIMEOUT: {{ $c.redisTimeout | toString | quote }}
CELERY_TASK_TIME_LIMIT: {{ $c.celeryTaskTimeLimit | int | toString | quote }}
OUTBOUND_ALLOW: {{ join "," $c.outboundAllow | quote }}
{{- with $c.outboundSchemes }}
OUTBOUND_SCHEMES: {{ join "," . | quote }}
{{- end }}
ACTION_LINK_MAX_AGE: {{ $c.actionLinkMaxAge | int | toString | quote }}
GUNICORN_WORKERS: {{ .Values.web.gunicorn.workers | int | toString | quote }}
GUNICORN_THREADS: {{ .Values.web.gunicorn.threads | int | toString | quote }}
GUNICORN_TIMEOUT: {{ .Values.web.gunicorn.timeout | int | toString | quote }}
SLACK_API_URL: {{ .Values.chat.slackApiUrl | quote }}
{{- if .Values.chat.mattermostUrl }}
MATTERMOST_URL: {{ .Values.chat.mattermostUrl | quote }}
{{- end }}
CHAT_TIMEOUT: {{ .Values.chat.timeout | toString | quote }}
PROMETHEUS_MULTIPROC_DIR: "/tmp/prometheus"
HOME: "/tmp"
{{- range $name, $value := $c.extraEnv }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/*
The OpenID Connect settings as NAME: value (empty while oidc.issuer is).
Not in the migrations hook's environment: without them it needs no client
secret, and `migrate` never signs anyone in.
*/}}
{{- define "triage.oidcEnv" -}}
{{- $o := .Values.oidc -}}
{{- if $o.issuer -}}
{{- if not $o.clientId -}}
{{- fail "oidc.issuer is set: set oidc.clientId to the client registered for triage at the provider" -}}
{{- end -}}
{{- if not (or $o.existingSecret $o.clientSecret .Values.existingSecret) -}}
{{- fail "oidc.issuer is set: give the client secret in oidc.clientSecret, or as the key OIDC_CLIENT_SECRET of oidc.existingSecret or existingSecret" -}}
{{- end }}
OIDC_ISSUER: {{ $o.issuer | quote }}
OIDC_CLIENT_ID: {{ $o.clientId | quote }}
{{- with $o.providerName }}
OIDC_PROVIDER_NAME: {{ . | quote }}
{{- end }}
OIDC_SCOPES: {{ $o.scopes | quote }}
OIDC_GROUPS_CLAIM: {{ $o.groupsClaim | quote }}
{{- with $o.staffGroup }}
OIDC_STAFF_GROUP: {{ . | quote }}
{{- end }}
OIDC_PASSWORD_LOGIN: {{ $o.passwordLogin | toString | quote }}
{{- else if not $o.passwordLogin -}}
{{- fail "oidc.passwordLogin is false but oidc.issuer is empty: only superusers could log in" -}}
{{- end -}}
{{- end -}}

{{/* The Secret with OIDC_CLIENT_SECRET: oidc.existingSecret, the chart's own, or none. */}}
{{- define "triage.oidcSecretName" -}}
{{- if .Values.oidc.issuer -}}
{{- if .Values.oidc.existingSecret -}}
{{- .Values.oidc.existingSecret -}}
{{- else if .Values.oidc.clientSecret -}}
{{- printf "%s-oidc" (include "triage.fullname" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Pod-level settings shared by every pod. */}}
{{- define "triage.podSpecCommon" -}}
automountServiceAccountToken: false
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
volumes:
  # The root filesystem is read-only: /tmp (HOME, gunicorn's control socket,
  # beat's schedule file) and the Prometheus multiprocess folder are the only
  # writable places.
  - name: tmp
    emptyDir:
      sizeLimit: {{ .Values.tmpSizeLimit }}
  - name: prometheus-multiproc
    emptyDir:
      sizeLimit: 64Mi
{{- end -}}

{{- define "triage.volumeMounts" -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  - name: prometheus-multiproc
    mountPath: /tmp/prometheus
{{- end -}}

{{/* Environment of the long-running containers: the ConfigMap and the Secret. */}}
{{- define "triage.envFrom" -}}
envFrom:
  - configMapRef:
      name: {{ include "triage.fullname" . }}
  - secretRef:
      name: {{ include "triage.secretName" . }}
{{- with include "triage.chatSecretName" . }}
  - secretRef:
      name: {{ . }}
{{- end }}
{{- with include "triage.oidcSecretName" . }}
  - secretRef:
      name: {{ . }}
{{- end }}
{{- end -}}

{{/* The chat secrets the chart writes (non-empty chat.secret values), as NAME: value. */}}
{{- define "triage.chatSecretData" -}}
{{- $s := .Values.chat.secret -}}
{{- range $name, $value := dict "SLACK_SIGNING_SECRET" $s.slackSigningSecret "SLACK_BOT_TOKEN" $s.slackBotToken "MATTERMOST_BOT_TOKEN" $s.mattermostBotToken "MATTERMOST_COMMAND_TOKEN" $s.mattermostCommandToken }}
{{- if $value }}
{{ $name }}: {{ $value | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The Secret with the chat secrets: chat.existingSecret, the chart's own, or none. */}}
{{- define "triage.chatSecretName" -}}
{{- if .Values.chat.existingSecret -}}
{{- .Values.chat.existingSecret -}}
{{- else if trim (include "triage.chatSecretData" .) -}}
{{- printf "%s-chat" (include "triage.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Roll the pods when the settings change. */}}
{{- define "triage.checksumAnnotations" -}}
checksum/config: {{ print (include "triage.configEnv" .) (include "triage.oidcEnv" .) | sha256sum }}
{{- if not .Values.existingSecret }}
checksum/secret: {{ printf "%s|%s|%s" .Values.secret.secretKey .Values.secret.databaseUrl .Values.secret.redisUrl | sha256sum }}
{{- end }}
{{- if and (not .Values.chat.existingSecret) (trim (include "triage.chatSecretData" .)) }}
checksum/chat-secret: {{ include "triage.chatSecretData" . | sha256sum }}
{{- end }}
{{- if and .Values.oidc.issuer (not .Values.oidc.existingSecret) .Values.oidc.clientSecret }}
checksum/oidc-secret: {{ .Values.oidc.clientSecret | sha256sum }}
{{- end }}
{{- end -}}

{{/* Egress rules when egress is restricted: DNS, then the listed rules. */}}
{{- define "triage.egressRules" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{ toYaml .Values.networkPolicy.egress }}
{{- end -}}
