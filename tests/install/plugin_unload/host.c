/* A host that loads a plugin linking libsmyrf statically, runs it on a thread, unloads
 * it, and only then lets that thread end (its key destructors run as it ends): the
 * library's worker threads and its pool key's destructor must not be left running code
 * that was unmapped. */
#include <dlfcn.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>

static sem_t ran, unloaded;
static int (*plugin_run)(void);
static int result = -1;

static void *caller(void *arg) {
    (void)arg;
    result = plugin_run();
    sem_post(&ran);
    sem_wait(&unloaded);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    void *plugin = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!plugin) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    *(void **)&plugin_run = dlsym(plugin, "plugin_run");
    if (!plugin_run) {
        fprintf(stderr, "dlsym: %s\n", dlerror());
        return 1;
    }
    pthread_t thread;
    sem_init(&ran, 0, 0), sem_init(&unloaded, 0, 0);
    if (pthread_create(&thread, NULL, caller, NULL) != 0) return 1;
    sem_wait(&ran);
    dlclose(plugin);
    sem_post(&unloaded);
    pthread_join(thread, NULL);
    if (result != 0) {
        fprintf(stderr, "the plugin's execute failed\n");
        return 1;
    }
    printf("survived: the plugin was unloaded before its caller thread ended\n");
    return 0;
}
