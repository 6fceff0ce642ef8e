{{/* Names, labels, the rendered veer config and the veer container, shared by the gateway and sidecar modes. */}}

{{- define "veer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "veer.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "veer.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "veer.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "veer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "veer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "veer.labels" -}}
{{ include "veer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Fails the render on values that cannot work, with the value's path and the reason. */}}
{{- define "veer.validate" -}}
{{- if not (has .Values.mode (list "gateway" "sidecar")) -}}
{{- fail (printf "mode: must be gateway or sidecar, got %q" (toString .Values.mode)) -}}
{{- end -}}
{{- if and (eq .Values.mode "sidecar") (empty .Values.sidecar.containers) -}}
{{- fail "sidecar.containers: sidecar mode needs your application's containers (veer runs beside them)" -}}
{{- end -}}
{{- if and .Values.podDisruptionBudget.enabled .Values.podDisruptionBudget.minAvailable .Values.podDisruptionBudget.maxUnavailable -}}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" -}}
{{- end -}}
{{- range .Values.adminTokens.tokens -}}
{{- if or (empty .name) (empty .key) -}}
{{- fail "adminTokens.tokens[]: each token needs a name (the audit log's actor) and the key of its Secret entry" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The environment variable that carries one admin token: VEER_ADMIN_TOKEN_<NAME>. */}}
{{- define "veer.tokenEnv" -}}
{{- printf "VEER_ADMIN_TOKEN_%s" (regexReplaceAll "[^A-Za-z0-9]" .name "_" | upper) -}}
{{- end -}}

{{/*
The config file: the values' config, with what the chart owns set over it: the listeners (the proxy on
loopback in sidecar mode, on the pod IP in gateway mode; admin on the pod IP for probes and scrapes), the
tokens (each read from its env var) and the state paths (on the state volume).
*/}}
{{- define "veer.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- $host := ternary "127.0.0.1" "0.0.0.0" (eq .Values.mode "sidecar") -}}
{{- $_ := set $cfg "listen" (merge (dict "host" $host "port" (int .Values.ports.proxy)) (get $cfg "listen" | default dict)) -}}
{{- $tokens := list -}}
{{- range .Values.adminTokens.tokens -}}
{{- $tokens = append $tokens (dict "name" .name "role" (.role | default "operator") "env" (include "veer.tokenEnv" .)) -}}
{{- end -}}
{{- $_ = set $cfg "admin" (merge (dict "host" "0.0.0.0" "port" (int .Values.ports.admin) "tokens" $tokens) (get $cfg "admin" | default dict)) -}}
{{- $_ = set $cfg "state" (dict "path" "/var/lib/veer/veer-state.json" "audit_path" "/var/lib/veer/veer-audit.jsonl") -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* veer's container: the Deployment's container in gateway mode, a native sidecar (init container) in sidecar mode. */}}
{{- define "veer.container" -}}
- name: veer
  image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if eq .Values.mode "sidecar" }}
  restartPolicy: Always
  {{- end }}
  env:
    - name: VEER_CONFIG
      value: /etc/veer/veer.yaml
    {{- range .Values.adminTokens.tokens }}
    - name: {{ include "veer.tokenEnv" . }}
      valueFrom:
        secretKeyRef:
          name: {{ $.Values.adminTokens.secretName }}
          key: {{ .key }}
    {{- end }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: proxy
      containerPort: {{ .Values.ports.proxy }}
    - name: admin
      containerPort: {{ .Values.ports.admin }}
  startupProbe:
    {{- toYaml .Values.probes.startup | nindent 4 }}
  readinessProbe:
    {{- toYaml .Values.probes.readiness | nindent 4 }}
  livenessProbe:
    {{- toYaml .Values.probes.liveness | nindent 4 }}
  lifecycle:
    preStop:
      sleep:
        seconds: {{ .Values.preStopSleepSeconds }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: veer-config
      mountPath: /etc/veer
      readOnly: true
    - name: veer-state
      mountPath: /var/lib/veer
{{- end -}}
