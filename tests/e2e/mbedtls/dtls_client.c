/*
 * A DTLS 1.2 client on Mbed TLS 2.28 (Debian's libmbedtls-dev) for the
 * interop tests, built by tests/e2e/mbedtls_test.ts:
 *
 *   cc -o dtls_client dtls_client.c -lmbedtls -lmbedx509 -lmbedcrypto
 *   dtls_client HOST PORT IDENTITY PSK_HEX SUITE MESSAGE
 *   dtls_client --ca CA_PEM [--server-name NAME] [--cert CERT_PEM --key KEY_PEM]
 *               HOST PORT SUITE MESSAGE
 *
 * The first form runs on a pre-shared key. The second runs on certificates:
 * it verifies the server's chain against CA_PEM and its name against NAME
 * (default localhost; also sent as SNI) with MBEDTLS_SSL_VERIFY_REQUIRED, and
 * answers a CertificateRequest with CERT_PEM if given (client
 * authentication).
 *
 * SUITE is the IANA name (TLS_PSK_WITH_AES_128_CCM_8); Mbed TLS spells it
 * with dashes. It completes the handshake (cookie exchange included), sends
 * MESSAGE, prints {"suite":"...","reply":"..."} (with certificates also
 * "peer", the subject of the server's certificate) and sends close_notify.
 * Exit status 0 only if all of that worked; a failed verification prints
 * its reasons (mbedtls_x509_crt_verify_info) on stderr.
 */
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/timing.h>
#include <mbedtls/x509_crt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, int ret) {
  char text[200];
  mbedtls_strerror(ret, text, sizeof text);
  fprintf(stderr, "%s: -0x%04x %s\n", what, (unsigned)-ret, text);
  return 1;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Prints `s` as a JSON string body: the reply is ASCII text from the server. */
static void print_json_string(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '"' || s[i] == '\\') printf("\\%c", s[i]);
    else if (s[i] < 0x20) printf("\\u%04x", s[i]);
    else putchar(s[i]);
  }
}

static int usage(const char *self) {
  fprintf(stderr,
          "usage: %s HOST PORT IDENTITY PSK_HEX SUITE MESSAGE\n"
          "       %s --ca CA_PEM [--server-name NAME] [--cert CERT_PEM --key KEY_PEM] "
          "HOST PORT SUITE MESSAGE\n",
          self, self);
  return 2;
}

int main(int argc, char **argv) {
  /* Certificate mode's options come first; then the positional arguments. */
  const char *ca_file = NULL, *server_name = "localhost", *cert_file = NULL, *key_file = NULL;
  int arg = 1;
  while (arg + 1 < argc && strncmp(argv[arg], "--", 2) == 0) {
    if (strcmp(argv[arg], "--ca") == 0) ca_file = argv[arg + 1];
    else if (strcmp(argv[arg], "--server-name") == 0) server_name = argv[arg + 1];
    else if (strcmp(argv[arg], "--cert") == 0) cert_file = argv[arg + 1];
    else if (strcmp(argv[arg], "--key") == 0) key_file = argv[arg + 1];
    else return usage(argv[0]);
    arg += 2;
  }
  const int certificates = ca_file != NULL;
  if ((cert_file == NULL) != (key_file == NULL)) return usage(argv[0]);
  if (!certificates && (cert_file != NULL || arg != 1)) return usage(argv[0]);
  if (argc - arg != (certificates ? 4 : 6)) return usage(argv[0]);
  const char *host = argv[arg], *port = argv[arg + 1];
  const char *identity = certificates ? NULL : argv[arg + 2];
  const char *psk_hex = certificates ? NULL : argv[arg + 3];
  const char *suite_arg = argv[argc - 2], *message = argv[argc - 1];

  unsigned char psk[64];
  size_t psk_len = 0;
  if (!certificates) {
    psk_len = strlen(psk_hex) / 2;
    if (strlen(psk_hex) % 2 != 0 || psk_len == 0 || psk_len > sizeof psk) {
      fprintf(stderr, "bad PSK\n");
      return 2;
    }
    for (size_t i = 0; i < psk_len; i++) {
      int hi = hex_value(psk_hex[2 * i]), lo = hex_value(psk_hex[2 * i + 1]);
      if (hi < 0 || lo < 0) {
        fprintf(stderr, "bad PSK\n");
        return 2;
      }
      psk[i] = (unsigned char)(hi << 4 | lo);
    }
  }

  char suite_name[100];
  if (strlen(suite_arg) >= sizeof suite_name) return 2;
  strcpy(suite_name, suite_arg);
  for (char *c = suite_name; *c; c++) if (*c == '_') *c = '-';
  int suites[2] = {mbedtls_ssl_get_ciphersuite_id(suite_name), 0};
  if (suites[0] == 0) {
    fprintf(stderr, "Mbed TLS has no suite %s\n", suite_name);
    return 2;
  }

  mbedtls_net_context net;
  mbedtls_ssl_context ssl;
  mbedtls_ssl_config conf;
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_timing_delay_context timer;
  mbedtls_x509_crt ca, cert;
  mbedtls_pk_context key;
  mbedtls_x509_crt_init(&ca);
  mbedtls_x509_crt_init(&cert);
  mbedtls_pk_init(&key);
  mbedtls_net_init(&net);
  mbedtls_ssl_init(&ssl);
  mbedtls_ssl_config_init(&conf);
  mbedtls_entropy_init(&entropy);
  mbedtls_ctr_drbg_init(&drbg);
  int status = 1, ret;

  if ((ret = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0)) != 0) {
    status = fail("seed", ret);
    goto done;
  }
  if ((ret = mbedtls_net_connect(&net, host, port, MBEDTLS_NET_PROTO_UDP)) != 0) {
    status = fail("connect", ret);
    goto done;
  }
  if ((ret = mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT,
                                         MBEDTLS_SSL_TRANSPORT_DATAGRAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT)) != 0) {
    status = fail("config", ret);
    goto done;
  }
  mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
  mbedtls_ssl_conf_ciphersuites(&conf, suites);
  mbedtls_ssl_conf_min_version(&conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_read_timeout(&conf, 5000);
  if (certificates) {
    if ((ret = mbedtls_x509_crt_parse_file(&ca, ca_file)) != 0) {
      status = fail("--ca", ret);
      goto done;
    }
    mbedtls_ssl_conf_ca_chain(&conf, &ca, NULL);
    mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    if (cert_file != NULL) {
      if ((ret = mbedtls_x509_crt_parse_file(&cert, cert_file)) != 0) {
        status = fail("--cert", ret);
        goto done;
      }
      if ((ret = mbedtls_pk_parse_keyfile(&key, key_file, NULL)) != 0) {
        status = fail("--key", ret);
        goto done;
      }
      if ((ret = mbedtls_ssl_conf_own_cert(&conf, &cert, &key)) != 0) {
        status = fail("own cert", ret);
        goto done;
      }
    }
  } else if ((ret = mbedtls_ssl_conf_psk(&conf, psk, psk_len, (const unsigned char *)identity,
                                         strlen(identity))) != 0) {
    status = fail("psk", ret);
    goto done;
  }
  if ((ret = mbedtls_ssl_setup(&ssl, &conf)) != 0) {
    status = fail("setup", ret);
    goto done;
  }
  if (certificates && (ret = mbedtls_ssl_set_hostname(&ssl, server_name)) != 0) {
    status = fail("hostname", ret);
    goto done;
  }
  mbedtls_ssl_set_bio(&ssl, &net, mbedtls_net_send, mbedtls_net_recv, mbedtls_net_recv_timeout);
  mbedtls_ssl_set_timer_cb(&ssl, &timer, mbedtls_timing_set_delay, mbedtls_timing_get_delay);

  do ret = mbedtls_ssl_handshake(&ssl);
  while (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE);
  if (ret != 0) {
    status = fail("handshake", ret);
    uint32_t flags = mbedtls_ssl_get_verify_result(&ssl);
    if (certificates && flags != 0 && flags != (uint32_t)-1) {
      char info[512];
      mbedtls_x509_crt_verify_info(info, sizeof info, "verify: ", flags);
      fprintf(stderr, "%s", info);
    }
    goto done;
  }

  do ret = mbedtls_ssl_write(&ssl, (const unsigned char *)message, strlen(message));
  while (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE);
  if (ret < 0) {
    status = fail("write", ret);
    goto done;
  }

  unsigned char reply[2048];
  do ret = mbedtls_ssl_read(&ssl, reply, sizeof reply);
  while (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE);
  if (ret <= 0) {
    status = fail("read", ret);
    goto done;
  }

  printf("{\"suite\":\"%s\",\"reply\":\"", mbedtls_ssl_get_ciphersuite(&ssl));
  print_json_string(reply, (size_t)ret);
  const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&ssl);
  if (certificates && peer != NULL) {
    char subject[256];
    int n = mbedtls_x509_dn_gets(subject, sizeof subject, &peer->subject);
    printf("\",\"peer\":\"");
    if (n > 0) print_json_string((const unsigned char *)subject, (size_t)n);
  }
  printf("\"}\n");
  fflush(stdout);

  do ret = mbedtls_ssl_close_notify(&ssl);
  while (ret == MBEDTLS_ERR_SSL_WANT_WRITE);
  status = ret == 0 ? 0 : fail("close_notify", ret);

done:
  mbedtls_x509_crt_free(&ca);
  mbedtls_x509_crt_free(&cert);
  mbedtls_pk_free(&key);
  mbedtls_net_free(&net);
  mbedtls_ssl_free(&ssl);
  mbedtls_ssl_config_free(&conf);
  mbedtls_ctr_drbg_free(&drbg);
  mbedtls_entropy_free(&entropy);
  return status;
}
