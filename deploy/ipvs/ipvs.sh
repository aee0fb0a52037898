#!/bin/sh
# Several instances of the DTLS server behind Linux IPVS (ipvsadm), in NAT
# mode: the instances see each client's own address and port (IPVS rewrites
# only the destination), so per-source limits and the ACK text see the
# client. Their default route must go back through this director.
#
#   VIP=203.0.113.10 ./ipvs.sh 10.0.0.11 10.0.0.12 10.0.0.13
#
# Each instance runs with the same --psk-file and --ticket-key-file, so a
# client whose instance goes away resumes on another.
set -eu
VIP=${VIP:?set VIP to the address clients use}
PORT=${PORT:-4433}

# Maglev hashing over address and port (mh-port): a client's datagrams keep
# reaching one instance, and few clients move when an instance comes or goes.
ipvsadm -A -u "$VIP:$PORT" -s mh -b mh-port
for real in "$@"; do
  ipvsadm -a -u "$VIP:$PORT" -r "$real:$PORT" -m -w 1
done
# A UDP "connection" in IPVS lasts this long without traffic (tcp tcpfin udp, seconds):
# keep it above the client's heartbeat and at most the server's --idle-timeout.
ipvsadm --set 900 120 600
# IPVS does not check its real servers: keepalived (a MISC_CHECK running
# `dtls-server health http://REAL:9464/healthz`, or an HTTP_GET on the
# metrics port) sets the weight of a dead instance to 0, and
#   sysctl -w net.ipv4.vs.expire_nodest_conn=1
# drops the entries of a removed instance, so the client's next datagram is
# scheduled to a live one.
sysctl -w net.ipv4.vs.expire_nodest_conn=1
sysctl -w net.ipv4.vs.expire_quiescent_template=1
ipvsadm -L -n -u "$VIP:$PORT"
