{{/* Names, labels and the values derived from several others. */}}

{{- define "holdfast.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "holdfast.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "holdfast.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "holdfast.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "holdfast.selectorLabels" -}}
app.kubernetes.io/name: {{ include "holdfast.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "holdfast.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "holdfast.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: holdfast
{{- end -}}

{{- define "holdfast.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "holdfast.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "holdfast.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* StatefulSet when the spool is a claim per replica; Deployment otherwise. */}}
{{- define "holdfast.statefulSet" -}}
{{- if and (eq .Values.spool.type "pvc") (not .Values.spool.pvc.existingClaim) -}}true{{- end -}}
{{- end -}}

{{/* The StatefulSet's governing (headless) Service. Its EndpointSlices list every pod, ready or not, by name: the
controller passes them to each dataplane as its peers (--peers-service). */}}
{{- define "holdfast.podsService" -}}
{{- include "holdfast.fullname" . -}}-pods
{{- end -}}

{{/* The spool volume's size as a quantity (`10Gi`), or "" when it has none (a memory-backed emptyDir without a
limit cannot be sized). */}}
{{- define "holdfast.spoolSize" -}}
{{- if eq .Values.spool.type "pvc" -}}{{ .Values.spool.pvc.size }}{{- else -}}{{ .Values.spool.emptyDir.sizeLimit }}{{- end -}}
{{- end -}}

{{/* Bytes of a quantity the dataplane's parser accepts: digits and an optional k, M, G, T, Ki, Mi, Gi or Ti. */}}
{{- define "holdfast.bytes" -}}
{{- $q := toString . -}}
{{- $digits := regexFind "^[0-9]+" $q -}}
{{- $unit := trimPrefix $digits $q -}}
{{- $factors := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 -}}
{{- if or (not $digits) (not (hasKey $factors $unit)) -}}
{{- fail (printf "%q is not a size like 10Gi or 500M (digits and one of k, M, G, T, Ki, Mi, Gi, Ti)" $q) -}}
{{- end -}}
{{- mul (int64 $digits) (get $factors $unit) -}}
{{- end -}}

{{/* --spool-quota: the explicit value, or quotaPercent of the volume's size. */}}
{{- define "holdfast.spoolQuota" -}}
{{- if .Values.spool.quota -}}
{{- .Values.spool.quota -}}
{{- else -}}
{{- $size := include "holdfast.spoolSize" . -}}
{{- if not $size -}}0{{- else -}}
{{- div (mul (include "holdfast.bytes" $size | int64) (int64 .Values.spool.quotaPercent)) 100 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "holdfast.adminAddress" -}}
127.0.0.1:{{ .Values.dataplane.adminPort }}
{{- end -}}

{{/* An exec probe: the admin listener is on the pod's loopback, which a kubelet HTTP probe (sent to the pod IP)
cannot reach, so bash inside the container asks it over /dev/tcp and passes on a 200 status line. */}}
{{- define "holdfast.probe" -}}
exec:
  command:
    - /bin/bash
    - -c
    - exec 3<>/dev/tcp/127.0.0.1/{{ .root.Values.dataplane.adminPort }} && printf 'GET {{ .path }} HTTP/1.0\r\n\r\n' >&3 && read -r _ code _ <&3 && [ "$code" = 200 ]
{{- end -}}
