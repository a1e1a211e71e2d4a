# procd-mock-more.sh INIT_SCRIPT [ACTION] [VAR=value ...]: the SDK stand-in's
# procd mock (sdk-standin/procd-mock.sh, which runs start_service and
# service_triggers; path in $PROCD_MOCK) plus the procd functions it lacks; ACTION "reload" then
# runs reload_service too. Sourced by sh, like rc.common sources a script.
procd_add_jail_mount() { echo "jail_mount $*"; }
procd_add_jail_mount_rw() { echo "jail_mount_rw $*"; }
procd_send_signal() { echo "send_signal $*"; }
mock_script=$1
mock_action=$2
shift 2
set -- "$mock_script" "$@"
. "$PROCD_MOCK"
[ "$mock_action" = reload ] && { echo "--- reload"; reload_service; }
true
