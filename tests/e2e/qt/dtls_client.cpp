// A DTLS client on Qt's QDtls (Qt 5.15, Debian's qtbase5-dev), driven the
// way Qt's "DTLS client" example drives it, for the interop tests
// (tests/e2e/qt_test.ts):
//
//   g++ -std=c++17 -fPIC -o dtls_client dtls_client.cpp $(pkg-config --cflags --libs Qt5Network)
//   dtls_client HOST PORT IDENTITY PSK_HEX MESSAGE [OPENSSL_CIPHER]
//   dtls_client --ca CA_PEM [--server-name NAME] HOST PORT MESSAGE [OPENSSL_CIPHER]
//
// Without OPENSSL_CIPHER it offers Qt's default DTLS configuration, as the
// example does. It completes the handshake, sends MESSAGE, prints
// {"cipher":"...","reply":"..."} on the first reply, sends close_notify
// (QDtls::shutdown) and exits 0; any failure exits 1 with a reason on stderr.
//
// The first form runs on a pre-shared key, the server unverified (the
// example's way). The second verifies the server's certificate: CA_PEM is
// the only trusted CA (QSslConfiguration::setCaCertificates), the peer
// verify mode is VerifyPeer and NAME (default localhost) the name the
// certificate must carry. The JSON line then also has "peer", the subject
// CN of the server's certificate; a failed verification prints each of
// QDtls::peerVerificationErrors() on stderr, after "handshake: ".
#include <QtCore>
#include <QtNetwork>
#include <cstdio>

static int finish(int code, const QString &why = {}) {
  if (!why.isEmpty()) std::fprintf(stderr, "%s\n", qPrintable(why));
  QCoreApplication::exit(code);
  return code;
}

/** QDtls's reasons for refusing the server's certificate, one a line. */
static QString verificationErrors(const QDtls &dtls) {
  QString text;
  for (const QSslError &error : dtls.peerVerificationErrors()) {
    text += "\nverify: " + error.errorString();
  }
  return text;
}

int main(int argc, char **argv) {
  QCoreApplication app(argc, argv);
  QStringList args = app.arguments();
  const auto usage = [] {
    std::fprintf(stderr,
                 "usage: dtls_client HOST PORT IDENTITY PSK_HEX MESSAGE [OPENSSL_CIPHER]\n"
                 "       dtls_client --ca CA_PEM [--server-name NAME] HOST PORT MESSAGE "
                 "[OPENSSL_CIPHER]\n");
    return 2;
  };
  // Certificate mode's options come first.
  QString caFile, serverName = QStringLiteral("localhost");
  while (args.size() > 2 && args[1].startsWith(QLatin1String("--"))) {
    if (args[1] == QLatin1String("--ca")) caFile = args[2];
    else if (args[1] == QLatin1String("--server-name")) serverName = args[2];
    else return usage();
    args.erase(args.begin() + 1, args.begin() + 3);
  }
  const bool certificates = !caFile.isEmpty();
  // PSK: HOST PORT IDENTITY PSK_HEX MESSAGE; certificates: HOST PORT MESSAGE.
  const int fixed = certificates ? 4 : 6;
  if (args.size() != fixed && args.size() != fixed + 1) return usage();
  const QHostAddress host(args[1]);
  const quint16 port = args[2].toUShort();
  const QByteArray identity = certificates ? QByteArray() : args[3].toUtf8();
  const QByteArray psk = certificates ? QByteArray() : QByteArray::fromHex(args[4].toLatin1());
  const QByteArray message = args[fixed - 1].toUtf8();

  QSslConfiguration config = QSslConfiguration::defaultDtlsConfiguration();
  if (certificates) {
    const QList<QSslCertificate> cas = QSslCertificate::fromPath(caFile, QSsl::Pem);
    if (cas.isEmpty()) {
      std::fprintf(stderr, "no PEM certificate in %s\n", qPrintable(caFile));
      return 2;
    }
    config.setCaCertificates(cas);
    config.setPeerVerifyMode(QSslSocket::VerifyPeer);
  } else {
    config.setPeerVerifyMode(QSslSocket::VerifyNone);
  }
  if (args.size() == fixed + 1) {
    const QSslCipher cipher(args[fixed]);
    if (cipher.isNull()) {
      std::fprintf(stderr, "Qt has no cipher %s\n", qPrintable(args[fixed]));
      return 2;
    }
    config.setCiphers({cipher});
  }

  QUdpSocket socket;
  if (!socket.bind(QHostAddress(host.protocol() == QAbstractSocket::IPv6Protocol
                                    ? QHostAddress::LocalHostIPv6
                                    : QHostAddress::LocalHost))) {
    return finish(1, "bind: " + socket.errorString());
  }
  QDtls dtls(QSslSocket::SslClientMode);
  dtls.setPeer(host, port, certificates ? serverName : QString());
  dtls.setDtlsConfiguration(config);

  QObject::connect(&dtls, &QDtls::pskRequired, [&](QSslPreSharedKeyAuthenticator *auth) {
    auth->setIdentity(identity);
    auth->setPreSharedKey(psk);
  });
  QObject::connect(&dtls, &QDtls::handshakeTimeout, [&] {
    if (!dtls.handleTimeout(&socket)) finish(1, "handleTimeout: " + dtls.dtlsErrorString());
  });
  QObject::connect(&socket, &QUdpSocket::readyRead, [&] {
    while (socket.hasPendingDatagrams()) {
      QByteArray datagram(int(socket.pendingDatagramSize()), Qt::Uninitialized);
      const qint64 n = socket.readDatagram(datagram.data(), datagram.size());
      if (n < 0) continue;
      datagram.resize(int(n));
      if (dtls.isConnectionEncrypted()) {
        const QByteArray reply = dtls.decryptDatagram(&socket, datagram);
        if (reply.isEmpty()) {
          if (dtls.dtlsError() == QDtlsError::RemoteClosedConnectionError) {
            finish(1, "the server closed the connection");
          }
          continue;
        }
        QJsonObject out{{"cipher", dtls.sessionCipher().name()},
                        {"reply", QString::fromUtf8(reply)}};
        if (certificates) {
          const QStringList cn =
              dtls.dtlsConfiguration().peerCertificate().subjectInfo(QSslCertificate::CommonName);
          out.insert("peer", cn.join(','));
        }
        std::printf("%s\n", QJsonDocument(out).toJson(QJsonDocument::Compact).constData());
        std::fflush(stdout);
        if (!dtls.shutdown(&socket)) finish(1, "shutdown: " + dtls.dtlsErrorString());
        else finish(0);
        return;
      }
      if (!dtls.doHandshake(&socket, datagram)) {
        finish(1, "handshake: " + dtls.dtlsErrorString() + verificationErrors(dtls));
        return;
      }
      if (dtls.handshakeState() == QDtls::PeerVerificationFailed) {
        const QString errors = verificationErrors(dtls);
        dtls.abortHandshake(&socket);
        finish(1, "handshake: peer verification failed" + errors);
        return;
      }
      if (dtls.isConnectionEncrypted() &&
          dtls.writeDatagramEncrypted(&socket, message) < 0) {
        finish(1, "write: " + dtls.dtlsErrorString());
        return;
      }
    }
  });
  QTimer::singleShot(10000, [] { finish(1, "timed out"); });

  if (!dtls.doHandshake(&socket)) return finish(1, "handshake: " + dtls.dtlsErrorString());
  return app.exec();
}
