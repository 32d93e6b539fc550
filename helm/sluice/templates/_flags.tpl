{{/*
Every flag the chart passes to a Sluice binary is written here and nowhere else, so a renamed
flag is one edit. Each is `--name=value` (one list item), which tests/tests/e2e/helm_chart.rs
checks against the real binary's --help.
*/}}

{{/* Listen ports inside the pods (the Services map their own ports onto these names). */}}
{{- define "sluice.port.rtmp" -}}1935{{- end -}}
{{- define "sluice.port.http" -}}8080{{- end -}}
{{- define "sluice.port.https" -}}8443{{- end -}}
{{- define "sluice.port.rtmps" -}}1936{{- end -}}
{{- define "sluice.port.relay" -}}7000{{- end -}}
{{- define "sluice.port.grpc" -}}50051{{- end -}}
{{- define "sluice.port.cpHttp" -}}8090{{- end -}}

{{/* The etcd client flags every process shares (nodes and control plane). */}}
{{- define "sluice.flags.etcd" -}}
{{- $endpoints := .Values.etcd.external.endpoints -}}
{{- if not $endpoints -}}
{{- $etcd := include "sluice.component" (dict "root" . "component" "etcd") -}}
{{- $endpoints = list (printf "http://%s.%s.svc.%s:2379" $etcd .Release.Namespace .Values.clusterDomain) -}}
{{- end }}
- --etcd={{ join "," $endpoints }}
- --etcd-prefix={{ .Values.etcd.prefix }}
{{- if .Values.etcd.external.tls.enabled }}
- --etcd-ca-file=/var/run/sluice/etcd-tls/ca.crt
- --etcd-cert-file=/var/run/sluice/etcd-tls/tls.crt
- --etcd-key-file=/var/run/sluice/etcd-tls/tls.key
{{- end }}
{{- with .Values.etcd.external.auth.user }}
- --etcd-user={{ . }}
- --etcd-password-file=/var/run/sluice/etcd-auth/password
{{- end }}
{{- end -}}

{{/* Who may play (nodes and control plane sign and check the same tokens). */}}
{{- define "sluice.flags.playTokens" -}}
{{- with .Values.access.play.privateApps }}
- --play-token-secret-file=/var/run/sluice/play-token/secret
- --play-private-apps={{ join "," . }}
{{- end }}
{{- end -}}

{{/* Flags of both node binaries. .component: origin or edge. */}}
{{- define "sluice.flags.node" -}}
{{- $values := index .root.Values .component }}
- --node-id=$(POD_NAME)
- --rtmp-listen=0.0.0.0:{{ include "sluice.port.rtmp" . }}
- --http-listen=0.0.0.0:{{ include "sluice.port.http" . }}
- --log={{ .root.Values.log.level }}
- --log-format={{ .root.Values.log.format }}
- --web-dir=/usr/share/sluice/web
- --drain-timeout={{ $values.drainTimeoutSeconds }}s
- --tls-dir=/var/run/sluice/tls
- --hls-session-key-file=/var/run/sluice/hls/key
- --standbys={{ .root.Values.origin.standbys }}
{{ include "sluice.flags.etcd" .root }}
{{- include "sluice.flags.playTokens" .root }}
{{- with .root.Values.access }}
{{- with .play.webhookApps }}
- --play-webhook-apps={{ join "," . }}
{{- end }}
{{- if .webhook.url }}
- --webhook-url={{ .webhook.url }}
- --webhook-timeout={{ .webhook.timeout }}
{{- if .webhook.failOpen }}
- --webhook-fail-open
{{- end }}
{{- end }}
{{- if .quotas }}
- --quota-file=/var/run/sluice/quotas/quotas.toml
- --quota-grace={{ .quotaGrace }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "sluice.flags.origin" -}}
{{- $headless := printf "%s-headless" (include "sluice.component" (dict "root" .root "component" "origin")) }}
{{- include "sluice.flags.node" (dict "root" .root "component" "origin") }}
- --relay-listen=0.0.0.0:{{ include "sluice.port.relay" . }}
- --advertise-host=$(POD_NAME).{{ $headless }}.{{ .root.Release.Namespace }}.svc.{{ .root.Values.clusterDomain }}
{{- with .root.Values.access.publish }}
{{- if .keysSecret }}
- --publish-keys-file=/var/run/sluice/publish-keys/keys
{{- end }}
{{- if .tokenSecret }}
- --publish-token-secret-file=/var/run/sluice/publish-token/secret
{{- end }}
{{- with .openApps }}
- --publish-open-apps={{ join "," . }}
{{- end }}
{{- end }}
{{- range .root.Values.origin.extraArgs }}
- {{ . }}
{{- end }}
{{- end -}}

{{- define "sluice.flags.edge" -}}
{{- include "sluice.flags.node" (dict "root" .root "component" "edge") }}
- --advertise-host=$(POD_IP)
- --max-viewers={{ .root.Values.edge.maxViewers }}
{{- if .root.Values.edge.tls.enabled }}
- --https-listen=0.0.0.0:{{ include "sluice.port.https" . }}
- --https-cert=/var/run/sluice/https/tls.crt
- --https-key=/var/run/sluice/https/tls.key
{{- end }}
{{- if .root.Values.edge.rtmps.enabled }}
{{- if not .root.Values.edge.tls.enabled }}
{{- fail "edge.rtmps.enabled needs edge.tls (RTMPS serves its certificate)" }}
{{- end }}
- --rtmps-listen=0.0.0.0:{{ include "sluice.port.rtmps" . }}
{{- end }}
{{- with .root.Values.edge.publicHost }}
- --public-host={{ . }}
- --public-rtmp-port={{ $.root.Values.edge.service.rtmpPort }}
- --public-http-port={{ $.root.Values.edge.service.httpPort }}
{{- if $.root.Values.edge.tls.enabled }}
- --public-https-port={{ $.root.Values.edge.service.httpsPort }}
{{- end }}
{{- if $.root.Values.edge.rtmps.enabled }}
- --public-rtmps-port={{ $.root.Values.edge.service.rtmpsPort }}
{{- end }}
{{- end }}
{{- range .root.Values.edge.extraArgs }}
- {{ . }}
{{- end }}
{{- end -}}

{{- define "sluice.flags.controlPlane" -}}
- --grpc-listen=0.0.0.0:{{ include "sluice.port.grpc" . }}
- --http-listen=0.0.0.0:{{ include "sluice.port.cpHttp" . }}
- --log={{ .Values.log.level }}
- --log-format={{ .Values.log.format }}
- --balance-factor={{ .Values.controlPlane.balanceFactor }}
- --token-file=/var/run/sluice/token/token
{{- if .Values.controlPlane.tls.enabled }}
- --tls-cert=/var/run/sluice/cp-tls/tls.crt
- --tls-key=/var/run/sluice/cp-tls/tls.key
{{- end }}
{{ include "sluice.flags.etcd" . }}
{{- include "sluice.flags.playTokens" . }}
{{- if .Values.access.play.privateApps }}
- --play-token-ttl={{ .Values.access.play.tokenTtl }}
{{- if .Values.access.play.bindClient }}
- --play-token-bind-client
{{- end }}
{{- end }}
{{- range .Values.controlPlane.extraArgs }}
- {{ . }}
{{- end }}
{{- end -}}

{{/* The scheme of the control plane's HTTP port (its probes, the ServiceMonitor, NOTES). */}}
{{- define "sluice.controlPlaneScheme" -}}
{{- if .Values.controlPlane.tls.enabled -}}HTTPS{{- else -}}HTTP{{- end -}}
{{- end -}}
