// A DTLS client on Qt's QDtls (Qt 5.15, Debian's qtbase5-dev), driven the
// way Qt's "DTLS client" example drives it, for the interop tests
// (tests/e2e/qt_test.ts):
//
//   g++ -std=c++17 -fPIC -o dtls_client dtls_client.cpp $(pkg-config --cflags --libs Qt5Network)
//   dtls_client HOST PORT IDENTITY PSK_HEX MESSAGE [OPENSSL_CIPHER]
//
// Without OPENSSL_CIPHER it offers Qt's default DTLS configuration, as the
// example does. It completes the handshake, sends MESSAGE, prints
// {"cipher":"...","reply":"..."} on the first reply, sends close_notify
// (QDtls::shutdown) and exits 0; any failure exits 1 with a reason on stderr.
#include <QtCore>
#include <QtNetwork>
#include <cstdio>

static int finish(int code, const QString &why = {}) {
  if (!why.isEmpty()) std::fprintf(stderr, "%s\n", qPrintable(why));
  QCoreApplication::exit(code);
  return code;
}

int main(int argc, char **argv) {
  QCoreApplication app(argc, argv);
  const QStringList args = app.arguments();
  if (args.size() != 6 && args.size() != 7) {
    std::fprintf(stderr, "usage: dtls_client HOST PORT IDENTITY PSK_HEX MESSAGE [OPENSSL_CIPHER]\n");
    return 2;
  }
  const QHostAddress host(args[1]);
  const quint16 port = args[2].toUShort();
  const QByteArray identity = args[3].toUtf8();
  const QByteArray psk = QByteArray::fromHex(args[4].toLatin1());
  const QByteArray message = args[5].toUtf8();

  QSslConfiguration config = QSslConfiguration::defaultDtlsConfiguration();
  config.setPeerVerifyMode(QSslSocket::VerifyNone);
  if (args.size() == 7) {
    const QSslCipher cipher(args[6]);
    if (cipher.isNull()) {
      std::fprintf(stderr, "Qt has no cipher %s\n", qPrintable(args[6]));
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
  dtls.setPeer(host, port);
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
        const QJsonObject out{{"cipher", dtls.sessionCipher().name()},
                              {"reply", QString::fromUtf8(reply)}};
        std::printf("%s\n", QJsonDocument(out).toJson(QJsonDocument::Compact).constData());
        std::fflush(stdout);
        if (!dtls.shutdown(&socket)) finish(1, "shutdown: " + dtls.dtlsErrorString());
        else finish(0);
        return;
      }
      if (!dtls.doHandshake(&socket, datagram)) {
        finish(1, "handshake: " + dtls.dtlsErrorString());
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
