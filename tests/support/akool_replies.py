"""Akool's replies and inputs as its documentation shows them, to the letter: what the protocol must read."""

from __future__ import annotations

# The vendor's sample replies, as printed in shared/seeds (comments removed).
SEED_REAGE_SUBMIT = {
    "code": 1000,
    "msg": (
        "Please be patient! If your results are not generated in three hours, please check your input image."
    ),
    "data": {
        "_id": "6593c94c0ef703e8c055e3c8",
        "url": "https://***.cloudfront.net/final_71688047459_.pic-1704184129269-4947-f8abc658-fa82-420f-b1b3-c747d7f18e14-8535.jpg",
        "job_id": "20240102082900592-5653",
    },
}
SEED_LISTBYIDS = {
    "code": 1000,
    "msg": "OK",
    "data": {
        "result": [
            {
                "faceswap_type": 1,
                "faceswap_quality": 2,
                "faceswap_status": 1,
                "deduction_status": 1,
                "image": 1,
                "video_duration": 0,
                "deduction_duration": 0,
                "update_time": 0,
                "_id": "64dae65af6e250d4fb2bca63",
                "userId": "64d985c5571729d3e2999477",
                "uid": 378337,
                "url": "https://d21ksh0k4smeql.cloudfront.net/final_material__d71fad6e-a464-43a5-9820-6e4347dce228-80554b9d-2387-4b20-9288-e939952c0ab4-0356.jpg",
                "createdAt": "2023-08-15T02:43:38.536Z",
            }
        ]
    },
}
SEED_JOB_DEL = {"code": 1000, "msg": "OK"}
SEED_BG_SUBMIT = {
    "code": 1000,
    "msg": "OK",
    "data": {
        "create_time": 1712133151184,
        "uid": 1432101,
        "type": 3,
        "faceswap_quality": 2,
        "image_id": "c7ed5294-6783-481e-af77-61a850cd19c7",
        "image_sub_status": 1,
        "image_status": 1,
        "deduction_credit": 4,
        "buttons": [],
        "used_buttons": [],
        "upscaled_urls": [],
        "error_reasons": [],
        "_id": "660d15b83ec46e810ca642f5",
        "__v": 0,
    },
}
SEED_INFOBYMODELID = {
    "code": 1000,
    "msg": "OK",
    "data": {
        "_id": "660d15b83ec46e810ca642f5",
        "create_time": 1712133560525,
        "uid": 1486241,
        "type": 3,
        "faceswap_quality": 2,
        "image_id": "e23018b5-b7a9-4981-a2ff-b20559f9b2cd",
        "image_sub_status": 3,
        "image_status": 3,
        "deduction_credit": 4,
        "buttons": [],
        "used_buttons": [],
        "upscaled_urls": [],
        "error_reasons": [],
        "__v": 0,
        "external_img": "https://drz0f01yeq1cx.cloudfront.net/1712133563402-result.png",
        "image": "https://drz0f01yeq1cx.cloudfront.net/1712133564746-d4a80a20-9612-4f59-958b-db9dec09b320-9409.png",
    },
}
SEED_TARGET = [
    {
        "path": "https://d21ksh0k4smeql.cloudfront.net/crop_1695201103793-0234-0-1695201106985-2306.png",
        "opts": "2804,2182:3607,1897:3341,2566:3519,2920",
    }
]
SEED_MODIFY_IMAGE = (
    "https://d3t6pcz7y7ey7x.cloudfront.net/material1__a92671d0-7960-4028-b2fc-aadd3541f32d.jpg"
)
