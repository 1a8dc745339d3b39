# The Python client printed at the end of Winfra XXL's API documentation, verbatim. The
# end-to-end test replaces only its URL and credential constants and its sleep, and runs it
# against a test server.

import requests
import os
import time

AUTH_SERVER_URL = "http://127.0.0.1:5000/"
AUTH_USER = "pruebas.admin"
AUTH_PASS = ""
API_NOMBRE = "xxl"
DOMAIN = "pruebas"
DOMAIN_SERVER_URL = "http://127.0.0.1:5000/"
DOMAIN_USER = "pruebas.admin"
DOMAIN_PASS = ""


def get_token():
    """
    implementa obtencion del token
    """
    apireq = {
        "domain": DOMAIN,
        "api": API_NOMBRE
    }

    r = requests.post(AUTH_SERVER_URL + "api_token/", auth=(AUTH_USER, AUTH_PASS), json=apireq, verify=False)
    if r.status_code == 555:
        raise ValueError("Error: {}".format(r.json()["error"]))
    else:
        r.raise_for_status()

    return r.json()["WINFRA-API-TOKEN"]


def api(token, path, data=None, raw=False):
    """
    implementa acceso a API y controla los errores
    """
    url = DOMAIN_SERVER_URL + "api_v1/" + path
    if data is None:
        method = "GET"
        r = requests.get(
            url,
            auth=(DOMAIN_USER, DOMAIN_PASS),
            headers={"WINFRA-API-TOKEN": token},
            verify=False
        )
    else:
        method = "POST"
        r = requests.post(
            url,
            auth=(DOMAIN_USER, DOMAIN_PASS),
            headers={"WINFRA-API-TOKEN": token},
            verify=False,
            json=data
        )

    print(f"{r.status_code} {method} {url}")

    if r.status_code in (555, 401, 422):
        raise ValueError("{}: {}".format(r.status_code, r.json()["error"]))
    else:
        r.raise_for_status()

    if raw:
        return r.content
    else:
        return r.json()


def xxl():
    """
    crear la peticion para generar los datos masivos y descargarlos
    """
    # obtener token
    t = get_token()

    # enviar peticion para generar los interlocutores de tipo proveedor y los articulos
    r = api(t, "generar_xxl", data=[
        {"dataset": "interlocutores", "tipo": "proveedor"},
        {"dataset": "articulos", },
    ])
    # id de la peticion
    pid = r["peticion_id"]
    print(f"Peticion {pid} creada...")

    # esperar hasta que se generen los datos
    while True:
        # obtener estado
        r = api(t, f"estado_xxl/{pid}")
        estado = r['estado']
        print(f"   {estado}")
        # si el estado es OK o ERROR ya esta acabado
        if estado == "OK" or estado == "ERROR":
            break

        # espero 10 minutos antes de volver a comprobar el estado
        time.sleep(10 * 60)

    # controlo el error
    if estado == "ERROR":
        print("Ocurrio un error en la generación de los datos:")
        for ds in r["datasets"]:
            if ds["estado"] == "ERROR":
                print(f"   {ds['dataset']} {ds['error_message']}")
    else:
        # generación ha funcionado, voy a descargar los datos
        print("Descargando datos...")
        pid = r["peticion_id"]
        # voy a descargar por bloques de 100 registros
        # esto no es necesario, si no hay muchos datos puede descargar todo de golpe
        limit = 100
        for ds in r["datasets"]:
            # nombre de conjunto generado
            dataset = ds['dataset']
            # numero de registros generados
            numero_registros = ds['numero_registros']
            print(f"   {dataset}: {numero_registros} registros.")

            # repetir la descarga desde 0 hasta numero de registros por bloque de 100
            for offset in range(0, numero_registros, limit):
                # obtener los datos
                r = api(t, f"datos_xxl/{pid}/{dataset}/{offset}/{limit}", raw=True)

                # escribir los datos a fichero como ejemplo
                with open(f"xxl.{dataset}.{offset}.json", "wb") as f:
                    f.write(r)

    print("Finalizado")


xxl()