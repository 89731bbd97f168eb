#!/usr/bin/env bash
# ./init.sh: make what `docker compose up -d` needs in this folder, keeping anything already
# there, and say what is left to edit:
#   .env                      from .env.example, with new random secrets
#   config/policy.yaml        the seed policy (edit the calendar: term dates, breaks)
#   config/identity.yaml      how people sign in (an Active Directory template to fill in)
#   config/ldap-bind-password the directory service account's password (readable by uid 10001)
#   config/alertmanager.yml   e-mail for the alerts, from the SCHOOLGATE_ALERT_*/SMTP_* in .env
# Run it again after editing .env to rewrite config/alertmanager.yml.
set -euo pipefail
here="${SCHOOLGATE_COMPOSE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$here"
mkdir -p config
todo=()

random_secret() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }

if [ ! -f .env ]; then
    while IFS= read -r line; do
        case "$line" in
            SCHOOLGATE_DB_PASSWORD=|SCHOOLGATE_SESSION_SECRET=|GRAFANA_ADMIN_PASSWORD=)
                printf '%s%s\n' "$line" "$(random_secret)" ;;
            *) printf '%s\n' "$line" ;;
        esac
    done < "$repo/deploy/compose/.env.example" > .env
    chmod 600 .env
    echo "made .env with new random secrets"
    todo+=(".env: the school's name, the gateway and admin host names, where alerts are e-mailed")
fi
while IFS= read -r line; do  # .env is compose's format, not shell: read it, never run it
    case "$line" in ''|'#'*) continue ;; esac
    name="${line%%=*}"; value="${line#*=}"
    [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] && export "$name=$value"
done < .env

if [ ! -f config/policy.yaml ]; then
    cp "$repo/schoolgate/policy/data/seed.yaml" config/policy.yaml
    echo "made config/policy.yaml (the seed policy)"
    todo+=("config/policy.yaml: the calendar (term dates, INSET days, lesson and break times; docs/policy.md)")
fi

if [ ! -f config/identity.yaml ]; then
    cat > config/identity.yaml <<'YAML'
# How the gateway and the admin know who is who (every key: schoolgate/store/data/demo-identity.yaml).
directory:
  kind: ldap
  url: ldaps://dc1.school.lan                     # your domain controller
  ca_file: /etc/schoolgate/ad-ca.pem              # your domain's CA (put it in config/)
  bind_dn: CN=schoolgate,OU=Service Accounts,DC=school,DC=lan
  bind_password_file: /etc/schoolgate/ldap-bind-password
  user_search_base: OU=People,DC=school,DC=lan
  user_filter: "(&(objectClass=user)(sAMAccountName={username}))"
  username_attribute: sAMAccountName
  groups: {mode: ad_nested, search_base: "OU=Groups,DC=school,DC=lan"}
groups_to_roles:
  - {group: SocialMedia, role: social_media_manager}
  - {group: Staff, role: staff}
  - {group: Pupils, role: pupil}
auth_required: true
YAML
    echo "made config/identity.yaml (an Active Directory template)"
    todo+=("config/identity.yaml: your domain controller, names and groups; config/ad-ca.pem: your domain's CA")
fi

if [ ! -f config/ldap-bind-password ]; then
    : > config/ldap-bind-password
    chmod 640 config/ldap-bind-password
    todo+=("config/ldap-bind-password: the service account's password (printf '%s' 'PASSWORD' > config/ldap-bind-password)")
fi
if [ "$(id -u)" = 0 ]; then  # the image's schoolgate user (uid 10001) must read it
    chown 0:10001 config/ldap-bind-password
else
    chmod 644 config/ldap-bind-password 2>/dev/null || true
    todo+=("config/ldap-bind-password: as root, 'chown 0:10001' it and 'chmod 640' (the containers run as uid 10001)")
fi

auth=""
if [ -n "${SCHOOLGATE_SMTP_USERNAME:-}" ]; then
    auth="  smtp_auth_username: '${SCHOOLGATE_SMTP_USERNAME}'
  smtp_auth_password: '${SCHOOLGATE_SMTP_PASSWORD:-}'"
fi
cat > config/alertmanager.yml <<YAML
# Made by ./init.sh from .env: run it again after changing the SCHOOLGATE_ALERT_*/SMTP_* values.
global:
  smtp_smarthost: '${SCHOOLGATE_SMTP_SMARTHOST:?set SCHOOLGATE_SMTP_SMARTHOST in .env}'
  smtp_from: '${SCHOOLGATE_ALERT_EMAIL_FROM:?set SCHOOLGATE_ALERT_EMAIL_FROM in .env}'
  smtp_require_tls: true
${auth}
route:
  receiver: it-email
  group_by: [alertname, severity]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: it-email
    email_configs:
      - to: '${SCHOOLGATE_ALERT_EMAIL_TO:?set SCHOOLGATE_ALERT_EMAIL_TO in .env}'
        send_resolved: true
YAML
chmod 644 config/alertmanager.yml
echo "wrote config/alertmanager.yml (alerts to ${SCHOOLGATE_ALERT_EMAIL_TO})"

if [ ${#todo[@]} -gt 0 ]; then
    echo
    echo "Before 'docker compose up -d', edit:"
    for item in "${todo[@]}"; do echo "  - $item"; done
else
    echo "Ready: docker compose up -d"
fi
